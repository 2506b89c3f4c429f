"""Notebooks 02-04: the logic in ``priorlib.compendium.runs`` (fast) and each notebook executed
end to end with ``-p profile smoke`` (slow: a kernel, the tiny model and a handful of training runs)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from priorlib.compendium import runs as sec
from priorlib.compendium import chapter
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup

C02, C03, C04 = (chapter(n) for n in ("02_lr_priors", "03_exclusion", "04_activation_spaces"))


# ----------------------------------------------------------------------------------------------- settings
def test_settings_fill_profile_defaults_and_honour_overrides():
    s = setup("02_lr_priors", "cpu")
    assert s.model == "smollm2-135m" and s.priors == list(sec.TOKEN_PRIORS)
    assert s.replicate_lr == 5e-3 and 5e-4 in s.learning_rates
    cfg = s.base()
    assert cfg.steps == s.steps and cfg.batch_size == s.batch_size and cfg.eval_every == cfg.checkpoint_every
    o = setup("02_lr_priors", "cpu", learning_rates=[1e-3], seeds=[3], steps=7, out_dir="/tmp/x")
    assert o.learning_rates == [1e-3] and o.seeds == [3] and o.steps == 7 and o.replicate_lr is None
    assert o.run_overrides["checkpoint_every"] <= 7 and str(o.out_dir) == "/tmp/x"
    with pytest.raises(ValueError):
        setup("02_lr_priors", "nope")


def test_lr_seed_grid_replicates_only_at_the_chosen_rate():
    s = setup("02_lr_priors", "cpu")
    cfgs = sec.lr_seed_grid(s, s.base())
    n_first = len(s.priors) * len(s.learning_rates)
    assert len(cfgs) == n_first + len(s.priors) * (len(s.seeds) - 1)
    extra = [c for c in cfgs if c.seed != s.seeds[0]]
    assert extra and all(math.isclose(c.lr, s.replicate_lr) for c in extra)
    assert len({c.key() for c in cfgs}) == len(cfgs)
    s.replicate_lr = None
    assert len(sec.lr_seed_grid(s, s.base())) == n_first * len(s.seeds)


def test_notebook_04_token_baseline_shares_run_keys_with_notebook_02():
    """The soft/fitted-Gaussian baseline of 04 is the same run as 02's at lr 5e-3 (reused, not retrained)."""
    from priorlib.compendium import experiments as ex
    s2, s4 = setup("02_lr_priors", "cpu"), setup("04_activation_spaces", "cpu")
    keys2 = {c.key() for c in sec.lr_seed_grid(s2, s2.base())}
    keys4 = {c.key() for c in ex.grid(s4.base(), variant=[dict(prior="fitted-gaussian", method="soft",
                                                              soft_space="tokens")], lr=[5e-3], seed=s4.seeds)}
    assert keys4 <= keys2


def test_sentences_name_the_stand_in_and_the_extra_rates():
    s = setup("02_lr_priors", "cpu")
    assert "SmolLM2-135M-Instruct stands in for the paper's Llama-3.2-1B" in sec.model_sentence(s)
    txt = sec.lr_sentence(s)
    assert "0.0005" in txt and "Added here: 0.05" in txt


# ----------------------------------------------------------------------------------------------- statistics
def test_first_step_at_or_below():
    assert sec.first_step_at_or_below([0, 4, 8], [3.0, 2.0, 1.0], 2.0) == 4.0
    assert sec.first_step_at_or_below([8, 0, 4], [1.0, 3.0, 2.0], 2.5) == 4.0  # unsorted input
    assert math.isnan(sec.first_step_at_or_below([0, 4], [3.0, 2.9], 1.0))


def test_same_within_noise_uses_seed_sd_or_relative_tolerance():
    same, spread, tol = sec.same_within_noise({"a": 2.0, "b": 2.05}, seed_sd=float("nan"))
    assert same and spread == pytest.approx(0.05) and tol == pytest.approx(0.05 * 2.025)
    same, _, tol = sec.same_within_noise({"a": 2.0, "b": 2.5}, seed_sd=0.3)
    assert same and tol == pytest.approx(0.6)
    assert not sec.same_within_noise({"a": 2.0, "b": 2.5}, seed_sd=0.1)[0]


def test_group_compare_and_pooled_sd():
    rows = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 3, "m": [1.0, 2.0, 3.0, 5.0, 6.0, 7.0], "k": [0] * 6})
    c = sec.group_compare(rows, "m", "g", "a", "b")
    assert c["mean_a"] == 2.0 and c["mean_b"] == 6.0 and c["diff"] == -4.0
    assert c["pooled_sd"] == pytest.approx(1.0) and c["p_value"] < 0.05
    assert sec.pooled_seed_sd(rows, "m", ["g"]) == pytest.approx(1.0)
    single = sec.group_compare(rows.iloc[[0, 3]], "m", "g", "a", "b")
    assert math.isnan(single["p_value"]) and math.isnan(single["pooled_sd"])


def test_rank_correlation():
    assert sec.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert math.isnan(sec.rank_correlation([1, 2], [1, 2]))


def test_exclusion_density_on_a_gaussian_reference():
    from priorlib.priors import Reference
    g = torch.Generator().manual_seed(0)
    ref = Reference(torch.randn(5000, 16, generator=g), "toy")
    d = C03.exclusion_density(ref, c=5.0, n=500)
    sm = d["summary"]
    assert d["acceptance_rate"] == pytest.approx(d["acceptance_rate_analytic"], abs=0.02)
    assert sm["exclusion"]["median"] > 2 * sm["vocabulary"]["median"]
    assert sm["exclusion"]["share_in_hdr"] < 0.05 and 0.9 < sm["vocabulary"]["share_in_hdr"] < 1.0
    assert sm["exclusion"]["median"] == pytest.approx(d["expected_exclusion_median"], rel=0.1)


def _rows_place(n_seeds=2):
    rows, place = [], []
    for prior, off in (("isotropic", 0.0), ("xavier", 0.02)):
        for lr in (5e-4, 5e-3):
            for seed in range(n_seeds):
                rows.append(dict(prior=prior, lr=lr, seed=seed, final_val_loss=2.0 + off + 0.01 * seed, final_f1=40.0))
                for when, nn, moved in (("sampled", 1.0 + off * 10, 0.0), ("trained", 0.9 + off * 10, 0.1)):
                    place.append(dict(prior=prior, lr=lr, seed=seed, when=when, median_nn_l2=nn + 0.001 * seed,
                                      median_nn_cos=0.5, median_mahalanobis=30.0, share_in_hdr=0.0, moved_l2=moved))
    return pd.DataFrame(rows), pd.DataFrame(place)


def test_verdicts_02_from_synthetic_numbers():
    rows, place = _rows_place()
    s = setup("02_lr_priors", "cpu", learning_rates=[5e-4, 5e-3])
    out, num = C02.verdicts(rows, place, {"median_nn_l2": 0.5}, s)
    assert [v.outcome for v in out] == [V.Outcome.AGREES] * 3
    assert num["share_paper_lr_runs_moved_less_than_token_gap"] == 1.0
    assert list(V.frame(out)["verdict"]) == ["agrees"] * 3
    _, num = C02.verdicts(rows, place, {"median_nn_l2": 0.05}, s)
    assert num["share_paper_lr_runs_moved_less_than_token_gap"] == 0.0


def test_placement_summary_pairs_sampled_and_trained():
    _, place = _rows_place()
    ps = sec.placement_summary(place)
    assert len(ps) == 4 and "→" in ps.loc[0, "median_nn_l2"] and (ps["moved_l2"] > 0).all()


def test_settings_are_recorded_in_results_json(tmp_path):
    s = setup("03_exclusion", "smoke", out_dir=tmp_path)
    path = V.write_results(s.out_dir, {"x": float("nan")}, [V.Verdict("c", "m", V.Outcome.NOT_TESTED)],
                           notebook=C03.STEM, profile=s.profile, model=s.model, settings=s)
    d = json.loads(path.read_text())
    assert d["notebook"] == "03_exclusion" and d["model"] == d["settings"]["model"] == "tiny-random-llama"
    assert d["settings"]["priors"] == s.priors and d["settings"]["out_dir"] == str(tmp_path) and d["x"] is None


# ----------------------------------------------------------------------------------------------- notebooks
def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def _check_common(res: dict, stem: str, n_verdicts: int):
    assert res["notebook"] == stem and res["profile"] == "smoke" and res["model"] == "tiny-random-llama"
    assert len(res["verdicts"]) == n_verdicts
    assert all(V.Verdict.from_dict(v).by_model == {} for v in res["verdicts"])
    for r in res["runs"]:
        assert _finite(r["final_val_loss"]) and _finite(r["initial_val_loss"]) and _finite(r["final_f1"])
        assert 0 <= r["final_f1"] <= 100 and 0 <= r["final_exact_match"] <= 100
    assert res["n_runs"] == len(res["runs"])


@pytest.mark.slow
def test_notebook_02_smoke(smoke_notebook):
    res = smoke_notebook("02_lr_priors")
    s = res["settings"]
    _check_common(res, "02_lr_priors", 3)
    assert len(res["quality"]) == len(s["priors"]) * len(s["learning_rates"])  # one row per prior x lr
    assert {q["prior"] for q in res["quality"]} == set(s["priors"])
    assert len(res["placement"]) == 2 * res["n_runs"]
    for p in res["placement"]:
        assert _finite(p["median_nn_l2"]) and _finite(p["median_mahalanobis"]) and 0 <= p["share_in_hdr"] <= 1
    vocab = [p for p in res["placement"] if p["prior"] == "vocab-sample" and p["when"] == "sampled"]
    assert vocab and all(p["median_nn_l2"] < 1e-4 for p in vocab)  # vocab samples are token embeddings
    assert _finite(res["numbers"]["vocab_median_nn_l2"])


@pytest.mark.slow
def test_notebook_03_smoke(smoke_notebook):
    res = smoke_notebook("03_exclusion")
    _check_common(res, "03_exclusion", 4)
    d = res["density"]
    assert 0 < d["acceptance_rate"] <= 1 and _finite(d["hdr_radius"])
    assert d["summary"]["exclusion"]["median"] > d["summary"]["vocabulary"]["median"]
    assert {q["prior"] for q in res["quality"]} == {"exclusion", "fitted-gaussian"}
    assert res["numbers"]["share_exclusion_in_hdr"] == d["summary"]["exclusion"]["share_in_hdr"]


@pytest.mark.slow
def test_notebook_04_smoke(smoke_notebook):
    res = smoke_notebook("04_activation_spaces")
    _check_common(res, "04_activation_spaces", 4)
    from priorlib.data import web_source_name
    assert res["web_source"] == web_source_name()
    variants = {q["variant"] for q in res["quality"]}
    assert variants == {"soft (tokens)", "soft (layers.0.resid_post)", "deep cut", "deep carry"}
    sep = res["numbers"]["separability"]
    assert len(sep) == 2 and all(0 <= v <= 1 for v in sep.values())
    cut = [r for r in res["runs"] if r["variant"] == "deep cut"]
    carry = [r for r in res["runs"] if r["variant"] == "deep carry"]
    assert sorted(r["seed"] for r in carry) == sorted(r["seed"] for r in cut if r["prior"] == "fitted-gaussian")
    assert len(res["deep_placement"]) == 2 * (len(cut) + len(carry))


def test_robust_rows_drops_the_largest_norms():
    x = torch.ones(100, 4)
    x[0] *= 1000
    rows, info = C04.robust_rows(x, q=0.98)
    assert len(rows) == 99 and info["dropped"] == 1 and info["max_over_median_norm"] == pytest.approx(1000)
