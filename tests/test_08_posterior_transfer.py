"""Notebook 08 (posterior as prior): its logic on synthetic inputs, and a smoke run of the notebook."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from priorlib.priors import Reference
from priorlib.priors import posterior as post
from priorlib.compendium import runs as sec
from priorlib.compendium import chapter
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup
S = chapter("08_posterior_transfer")
A, C, I = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE


@pytest.fixture
def bank(tmp_path, monkeypatch):
    """A saved bank of 4 prompts x 5 vectors (d = 8) in a private cache."""
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache"))
    post._LOADED.clear()
    yield post.save_bank(torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(0)), {"t": 1})
    post._LOADED.clear()


# ------------------------------------------------------------------------------------------ setup
def test_source_seed_0_is_notebook_02s_run():
    """The cpu source at lr 5e-2, seed 0, has the very key of notebook 02's fitted-gaussian cell."""
    s = setup("08_posterior_transfer", "cpu", out_dir="/tmp/priorlib-test-s08")
    src = s.source_configs()
    assert [c.seed for c in src] == [0, 1, 2, 3] and {c.lr for c in src} == {5e-2}
    assert all(c.task == "squad" and c.prior == "fitted-gaussian" and c.steps == 20 for c in src)
    s02 = setup("02_lr_priors", "cpu")
    keys_02 = {c.key(): c for c in sec.lr_seed_grid(s02, s02.base())}
    assert src[0].key() in keys_02 and keys_02[src[0].key()].lr == 5e-2
    t = s.target
    assert t.task == "math" and t.method.value == "soft" and t.model == "smollm2-135m"
    assert (t.steps, t.batch_size, t.eval_every, t.checkpoint_every, t.n_tokens) == (30, 8, 5, 5, 20)
    assert s.seeds == [0, 1, 2, 3, 4] and s.arms == list(S.ARMS)


def test_setup_rejects_bad_parameters():
    with pytest.raises(ValueError, match="unknown arm"):
        setup("08_posterior_transfer", "smoke", arms=["posterior-flow"])
    with pytest.raises(ValueError, match="at least two source seeds"):
        setup("08_posterior_transfer", "smoke", source_seeds=[0])
    with pytest.raises(ValueError, match="unknown profile"):
        setup("08_posterior_transfer", "gpu")
    with pytest.raises(ValueError, match="no bank yet"):
        S.target_configs(setup("08_posterior_transfer", "smoke"))


def test_target_grid_arms_and_copy_sources(bank):
    s = setup("08_posterior_transfer", "smoke", seeds=[0, 1, 2, 5], vae_epochs=7)
    s.bank, s.n_source_prompts = bank, 4
    cfgs = S.target_configs(s)
    assert len(cfgs) == len(S.ARMS) * 4 and len({c.key() for c in cfgs}) == len(cfgs)
    assert [S.arm_of(c) for c in cfgs[::4]] == list(S.ARMS)
    vae = [c for c in cfgs if S.arm_of(c) == "posterior-vae"][0]
    assert vae.prior_params == {"bank": bank, "fit": "vae", "epochs": "7"}
    copy = {c.seed: c.prior_params["source"] for c in cfgs if S.arm_of(c) == "posterior-copy"}
    assert copy == {0: "0", 1: "1", 2: "2", 5: "1"}  # seed k -> source prompt k mod 4
    assert all(c.prior_params == {} for c in cfgs if c.prior in S.CONTROL_ARMS)


# ------------------------------------------------------------------------------------------ source
def _fake_runs(sampled: torch.Tensor, trained: torch.Tensor, lr: float = 5e-2):
    """Objects with what ``bank_shift`` reads: config fields and checkpoints (step 0 and last)."""
    return [SimpleNamespace(config=SimpleNamespace(prior="fitted-gaussian", lr=lr, seed=k, steps=20, warmup_steps=2, schedule="linear"),
                            checkpoints=lambda a=a, b=b: [(0, {"soft": a}), (20, {"soft": b})])
            for k, (a, b) in enumerate(zip(sampled, trained))]


def test_bank_shift_tells_a_moved_posterior_from_one_that_stayed():
    g = torch.Generator().manual_seed(0)
    ref = Reference(torch.randn(600, 8, generator=g), "toy")
    sampled = ref.fit().sample(60, g).float().reshape(3, 20, 8)  # [P, n, d]
    moved, _ = S.bank_shift(_fake_runs(sampled, sampled + 3.0), ref, gap=0.5)
    assert moved["moved"] and moved["distinct"] and moved["separation"]["outcome"] == "agrees"
    assert moved["moved_outcome"] == "agrees" and moved["movement_bound"] > 0.5
    assert moved["median_moved_l2"] == pytest.approx(3.0 * math.sqrt(8), rel=1e-4)
    assert moved["median_mahalanobis_trained"] > 2 * moved["median_mahalanobis_sampled"]
    still, place = S.bank_shift(_fake_runs(sampled, sampled + 1e-3), ref, gap=0.5)
    assert not still["moved"] and still["moved_outcome"] == "contradicts"
    assert still["separation"]["outcome"] != "agrees" and not still["distinct"]
    assert "vacuous" in S.shift_sentence(still) and "not vacuous" in S.shift_sentence(moved)
    assert len(place) == 6 and set(place["when"]) == {"sampled", "trained"}
    # at a learning rate too small to cross the gap, "it moved" cannot be tested
    slow, _ = S.bank_shift(_fake_runs(sampled, sampled + 3.0, lr=1e-5), ref, gap=0.5)
    assert slow["moved_outcome"] == "not testable at this learning rate" and not slow["moved"]


# ------------------------------------------------------------------------------------------ target
def _rows(steps: dict, loss: dict, drop: float = 1.0, plateaued: bool = True) -> pd.DataFrame:
    """Three seeds per arm: ``steps[arm]`` and ``loss[arm]`` are the per-seed values."""
    out = []
    for arm in steps:
        for seed, (st, ls) in enumerate(zip(steps[arm], loss[arm])):
            out.append({"arm": arm, "seed": seed, "steps_to_target": float(st), "val_steps_to_target": float(st),
                        "final_val_loss": ls, "initial_val_loss": ls + drop, "val_loss_drop": drop,
                        "final_accuracy": 0.0, "plateaued": plateaued})
    return pd.DataFrame(out)


SHIFT = {"moved": True, "moved_outcome": "agrees", "distinct": True, "median_moved_l2": 4.0, "token_neighbour_gap": 0.5,
         "movement_bound": 12.0, "median_mahalanobis_sampled": 24.0, "median_mahalanobis_trained": 60.0,
         "separation": {"outcome": "agrees", "reason": "separated: silhouette 0.9"}, "n_vectors": 80}
VAE = {"active_units": 2, "latent_dim": 16, "variance_ratio": 0.1, "epochs": 300, "collapse": "both"}
TARGETS = {"train_loss_target": 1.5, "val_loss_target": 1.6}


def test_arm_stats_and_summary():
    rows = _rows({"a": [2, 4, 6], "b": [5, 5, 5]}, {"a": [1.0, 1.2, 1.4], "b": [2.0, 2.0, 2.0]})
    st = S.arm_stats(rows, "steps_to_target")
    assert st["a"] == {"mean": 4.0, "sd": 2.0, "min": 2.0, "max": 6.0, "n": 3}
    assert st["b"]["sd"] == 0.0
    summ = S.arm_summary(rows).set_index("arm")
    assert summ.loc["a", "steps_to_target"] == "4 ± 2 (2–6)" and summ.loc["a", "seeds"] == 3


def test_steps_metric_falls_back_to_validation_when_training_ties():
    rows = _rows({"a": [1, 1, 1], "b": [1, 1, 1]}, {"a": [1, 1, 1], "b": [1, 1, 1]})
    assert S.steps_metric(rows) == "val_steps_to_target"
    assert S.steps_metric(_rows({"a": [1, 2, 3]}, {"a": [1, 1, 1]})) == "steps_to_target"


def test_verdicts_when_the_posterior_helps():
    steps = {"posterior-gaussian": [3, 4, 5], "posterior-vae": [4, 4, 4], "posterior-copy": [2, 2, 3],
             "fitted-gaussian": [12, 13, 14], "vocab-sample": [10, 12, 14], "isotropic": [15, 15, 16]}
    loss = {a: [1.0, 1.01, 1.02] for a in steps}
    rows = _rows(steps, loss)
    out, num = S.verdicts_08(SHIFT, VAE, rows, TARGETS)
    assert [r.outcome for r in out] == [A] * 5
    assert [r.claim_id for r in out] == ["posterior-leaves-prior", "posterior-usable-prior", "posterior-prior-faster",
                                         "posterior-copy-faster", "posterior-vae-collapses"]
    assert num["steps"]["fitted-gaussian"]["mean"] == 13.0 and num["steps_metric"] == "steps_to_target"
    assert "0 for every run" in out[1].measured  # all accuracies 0: said so
    # the teacher-forced token accuracy, when recorded, is reported beside exact match
    tok_rows = rows.assign(final_val_token_accuracy=[40.0 + i for i in range(len(rows))])
    out_t, num_t = S.verdicts_08(SHIFT, VAE, tok_rows, TARGETS)
    assert "answer-token accuracy under teacher forcing posterior-gaussian 41.0 ± 1.0%" in out_t[1].measured
    assert "final accuracy" in out_t[1].measured and num_t["final_val_token_accuracy"]["isotropic"]["mean"] == 56.0
    note = S.closing_note(rows, num, SHIFT)
    assert "posterior-copy**: 2.33 ± 0.58 steps (2–3)" in note and "Fastest on average: **posterior-copy**" in note


def test_verdicts_when_it_does_not_or_cannot_tell():
    steps = {"posterior-gaussian": [10, 14, 18], "posterior-vae": [20, 20, 21], "posterior-copy": [12, 12, 12],
             "fitted-gaussian": [12, 13, 14], "vocab-sample": [10, 12, 14], "isotropic": [15, 15, 16]}
    loss = {**{a: [1.0, 1.01, 1.02] for a in steps}, "posterior-vae": [3.0, 3.0, 3.0]}
    rows = _rows(steps, loss)
    out, _ = S.verdicts_08(SHIFT, {**VAE, "collapse": "none"}, rows, TARGETS)
    # the VAE arm is worse and slower (contradicts); the copy's 12 vs 12-14 steps cannot be told apart
    assert [r.outcome for r in out] == [A, C, C, I, C]
    # a posterior that never left its prior makes the transfer rows vacuous
    out, _ = S.verdicts_08({**SHIFT, "moved": False, "moved_outcome": "contradicts"}, VAE, rows, TARGETS)
    assert [r.outcome for r in out] == [C, I, I, I, A] and "vacuous" in out[1].measured
    out, _ = S.verdicts_08({**SHIFT, "moved": False, "moved_outcome": "not testable at this learning rate"}, VAE,
                           rows, TARGETS)
    assert out[0].outcome is V.Outcome.NOT_TESTABLE and out[2].outcome is I
    # one seed: no spread, no 'faster' verdict
    one = rows[rows["seed"] == 0]
    out, _ = S.verdicts_08(SHIFT, VAE, one, TARGETS)
    assert out[2].outcome is I and out[3].outcome is I


def test_usable_needs_plateaued_arms():
    steps = {"posterior-gaussian": [3, 4, 5], "posterior-vae": [4, 4, 4], "fitted-gaussian": [12, 13, 14]}
    loss = {a: [1.0, 1.01, 1.02] for a in steps}
    assert S.verdicts_08(SHIFT, VAE, _rows(steps, loss), TARGETS)[0][1].outcome is A
    out, _ = S.verdicts_08(SHIFT, VAE, _rows(steps, loss, plateaued=False), TARGETS)
    assert out[1].outcome is I and "not known to have plateaued" in out[1].measured


def test_setup_is_recorded_in_results_json(tmp_path):
    s = setup("08_posterior_transfer", "smoke", out_dir=tmp_path)
    p = V.write_results(s.out_dir, {"ok": np.bool_(True)}, [V.Verdict("c", "m", A)], notebook=S.NOTEBOOK,
                        profile=s.profile, model=s.target.model, settings=s)
    got = json.loads(p.read_text())
    assert got["ok"] is True and got["notebook"] == S.NOTEBOOK and got["settings"]["target"]["task"] == "math"
    assert got["settings"]["source"]["model"] == got["model"] and got["settings"]["source_seeds"] == s.source_seeds


def test_plots_have_labelled_axes():
    from priorlib.compendium.plots import transfer as tp
    curves = pd.DataFrame({"arm": ["a"] * 4 + ["b"] * 4, "seed": [0, 0, 1, 1] * 2, "step": [1, 2] * 4,
                           "loss": [3.0, 2.0, 3.2, 2.2, 3.0, 2.5, 3.1, 2.6]})
    fig = tp.arm_curves(curves, "loss", ylabel="loss (nats/token)", title="t", target=2.6)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training step" and "nats" in ax.get_ylabel()
    assert np.allclose(ax.lines[0].get_ydata(), [3.1, 2.1])  # the mean over seeds
    rows = _rows({"a": [1, 2, 3], "b": [2, 2, 2]}, {"a": [1, 1, 1], "b": [2, 2, 2]})
    fig = tp.seed_dots(rows, [("steps_to_target", "steps"), ("final_val_loss", "loss")], title="t")
    assert [a.get_ylabel() for a in fig.axes] == ["steps", "loss"]


FAST = {"posterior-gaussian": [3, 4, 5], "posterior-vae": [4, 4, 4], "posterior-copy": [2, 2, 3],
        "fitted-gaussian": [12, 13, 14], "vocab-sample": [10, 12, 14], "isotropic": [15, 15, 16]}


def _curves(rows, value="loss"):
    return pd.DataFrame([{"arm": r.arm, "seed": r.seed, "step": k, value: 3.0 - 0.1 * k}
                         for r in rows.itertuples() for k in range(4)])


def test_curves_caption_names_the_fastest_arm_against_the_source_prior():
    loss = {**{a: [1.0, 1.01, 1.02] for a in FAST}, "posterior-vae": [0.9, 0.92, 0.94]}
    rows = _rows(FAST, loss)
    cap = S.curves_caption(_curves(rows), rows, 1.5)
    assert cap.startswith(f"MATH training answer loss (nats/token, y; a {S.SMOOTH}-step running mean) against the "
                          "training step (x): one line per prior arm, the mean over seeds (3 seeds each)")
    assert "the dashed line is the training-loss target 1.500" in cap
    assert cap.endswith("Fewest steps to it on average: posterior-copy, 2.33 ± 0.58 steps (mean ± sd over seeds), "
                        "against 13 ± 1 for the source's own prior, fitted-gaussian.")
    cap = S.curves_caption(_curves(rows, "val_loss"), rows, 1.6, kind="validation", questions="64")
    assert "validation-loss target 1.600" in cap and "posterior-copy, 2.33 ± 0.58 steps" in cap
    assert cap.startswith("MATH learning curve: validation answer loss (nats/token, y) on the first 64 held-out problems")
    assert cap.endswith("; lowest final validation loss (the whole held-out set): posterior-vae, 0.920 ± 0.020 nats/token.")
    # the source's own prior fastest, and unequal seed counts
    slow = _rows({"fitted-gaussian": [2, 2, 2], "isotropic": [9, 10]}, {"fitted-gaussian": [1, 1, 1], "isotropic": [1, 1]})
    cap = S.curves_caption(_curves(slow), slow, 1.5)
    assert "(2–3 seeds per arm)" in cap
    assert cap.endswith("fitted-gaussian, the source's own prior, 2 ± 0 steps (mean ± sd over seeds).")
    with pytest.raises(ValueError, match="kind"):
        S.curves_caption(_curves(rows), rows, 1.5, kind="test")


def test_seed_dots_caption_reports_the_verdicts_steps_measure():
    rows = _rows(FAST, {a: [1.0, 1.01, 1.02] for a in FAST})
    panels = [("steps_to_target", "steps to the training-loss target"), ("final_val_loss", "final validation loss"),
              ("final_accuracy", "final MATH accuracy, exact match (%)")]
    cap = S.seed_dots_caption(rows, panels)
    assert "one dot per run, its marker the seed (3 seeds: 0, 1, 2), the black bar the arm's mean over seeds" in cap
    assert ("On steps to the training-loss target, the measure the speed verdicts use, the fewest on average: "
            "posterior-copy, 2.33 ± 0.58 steps (mean ± sd over seeds), against 13 ± 1") in cap
    assert "the lowest mean final validation loss is posterior-gaussian's, 1.010 ± 0.010 nats/token" in cap
    assert cap.endswith("exact-match accuracy runs 0.0–0.0% over all 18 runs.")
    # training steps tied everywhere: the verdicts (and the caption) fall back to the validation steps
    tied = _rows({"a": [1, 1, 1], "b": [1, 1, 1]}, {"a": [1, 1, 1], "b": [2, 2, 2]})
    cap = S.seed_dots_caption(tied, [("val_steps_to_target", "steps to the validation-loss target")], ref="b")
    assert "On steps to the validation-loss target, the measure the speed verdicts use" in cap


# ------------------------------------------------------------------------------------------ notebook
@pytest.mark.slow
def test_notebook_08_smoke(smoke_notebook, tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache"))  # banks and VAEs: fresh
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "cache" / "artifacts"))
    res = smoke_notebook("08_posterior_transfer")
    for key in ("shift", "vae_on_bank", "runs", "summary", "targets", "numbers", "verdicts", "wall_s"):
        assert key in res, key
    assert (tmp_path / "cache" / "posteriors" / f"{res['settings']['bank']}.safetensors").exists()
    # what run_all was asked: the whole plan given the bank; without it, all but the posterior arms' runs
    full = S.plan("smoke", bank=res["settings"]["bank"])
    assert smoke_notebook.planned("08_posterior_transfer") == [c.key() for c in full]
    # the execution put the source runs in the (test's) evidence bank: the plan now makes the same posterior
    # bank from them and holds every run (without them it leaves the posterior arms out: the test above)
    assert [c.key() for c in S.plan("smoke")] == [c.key() for c in full]
    assert [(S.arm_of(c), c.seed) for c in full if c.prior == "posterior"] == S.deferred("smoke")
    assert {r["arm"] for r in res["runs"]} == set(S.ARMS) and len(res["runs"]) == len(S.ARMS) * 2
    for r in res["runs"]:
        for c in ("initial_val_loss", "final_val_loss", "steps_to_target", "val_steps_to_target"):
            assert r[c] is not None and math.isfinite(r[c]), (c, r)
    assert res["shift"]["n_vectors"] == 2 * 20 and res["shift"]["separation"]["outcome"] in {o.value for o in V.Outcome}
    assert res["copy_sources"] == {"0": 0, "1": 1}  # the copy arm started from the trained prompts
    assert 0 <= res["vae_on_bank"]["active_units"] <= res["vae_on_bank"]["latent_dim"]
    assert res["notebook"] == S.NOTEBOOK and len(res["verdicts"]) == 5
    assert all(V.Verdict.from_dict(v).by_model == {} for v in res["verdicts"])
    # the summary's means are the runs' means
    for row in res["summary"]:
        vals = [r["final_val_loss"] for r in res["runs"] if r["arm"] == row["arm"]]
        assert float(row["final_val_loss"].split(" ± ")[0]) == pytest.approx(np.mean(vals), rel=1e-2)


def test_early_loss_names_only_arms_clearly_below_the_reference():
    rows = []
    for arm, vals in {"fitted-gaussian": [2.0, 2.1, 2.2], "fast": [1.5, 1.55, 1.6], "close": [1.95, 2.05, 2.1]}.items():
        for seed, v in enumerate(vals):
            rows += [{"arm": arm, "seed": seed, "step": 0, "val_loss": 3.0},
                     {"arm": arm, "seed": seed, "step": 10, "val_loss": v},
                     {"arm": arm, "seed": seed, "step": 30, "val_loss": v - 0.3}]
    e = S.early_loss(pd.DataFrame(rows))
    assert e["step"] == 10 and e["of"] == 30
    assert e["val_loss"]["fast"]["mean"] == pytest.approx(1.55)
    assert e["lower_than_ref"] == ["fast"]
    assert "not a test" in S.early_loss_sentence(e) and S.early_loss_sentence(e).endswith("below 0): fast.")


def test_plan_holds_the_posterior_arms_once_the_source_runs_are_in_the_evidence_bank(tmp_path, monkeypatch):
    """Without the source runs in the evidence bank the plan leaves the posterior arms out (their configs name
    a bank of trained prompts); with them there, it makes that bank from them, as the notebook will, and
    plans every run: the same list as ``plan(bank=...)`` given the notebook's hash."""
    from priorlib.compendium import evidence
    from priorlib.compendium.setup import setup
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(evidence, "lookup", lambda c, banks=None: None)
    partial = S.plan("smoke")
    assert not any(c.prior == "posterior" for c in partial)
    s = setup(S.NOTEBOOK, "smoke")
    source = s.source_configs()
    g = torch.Generator().manual_seed(0)
    fake = {c.key(): SimpleNamespace(config=c, checkpoints=lambda t=torch.randn(s.source.n_tokens, 64, generator=g):
                                     [(0, {"soft": t * 0}), (4, {"soft": t})]) for c in source}
    monkeypatch.setattr(evidence, "lookup", lambda c, banks=None: fake.get(c.key()))
    full = S.plan("smoke")
    sha = S.make_bank(setup(S.NOTEBOOK, "smoke"), [fake[c.key()] for c in source])
    assert [c.key() for c in full] == [c.key() for c in S.plan("smoke", bank=sha)]
    assert [(S.arm_of(c), c.seed) for c in full if c.prior == "posterior"] == S.deferred("smoke")
    assert [c.key() for c in full if c.prior != "posterior"] == [c.key() for c in partial]
    assert (tmp_path / "cache" / "posteriors" / f"{sha}.safetensors").exists()
