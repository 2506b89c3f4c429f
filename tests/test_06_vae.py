"""Chapter 06 (the VAE prior and its collapse): its rules, its sweep, its results file, and the notebook run end to end with the smoke profile."""
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from priorlib.compendium import chapter
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup
from priorlib.compendium.profiles import CHAPTERS

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from chapter_checks import finite_columns  # noqa: E402

S5, S6 = chapter("05_math_interpolation"), chapter("06_vae")


# ------------------------------------------------------------------------------------------ logic


def test_collapse_rule_and_findings():
    assert S6.is_collapsed(1, 16, 0.9) and S6.is_collapsed(10, 16, 0.1) and not S6.is_collapsed(8, 16, 0.5)
    sweep = pd.DataFrame([
        {"beta": b, "var_match": v, "active_units": a, "latent_dim": 16, "variance_ratio": r, "recon_mse": 0.5,
         "kl_total": 1.0, "collapsed": S6.is_collapsed(a, 16, r)}
        for b, v, a, r in [(0.25, 0.0, 12, 0.8), (1.0, 0.0, 3, 0.1), (4.0, 0.0, 0, 0.0), (1.0, 10.0, 6, 0.9)]])
    f = S6.collapse_findings(sweep)
    assert f["n_collapsed"] == 2 and f["n_settings"] == 4
    assert f["plain"]["collapsed"] and f["smallest_collapsing_beta_without_penalty"] == 1.0
    assert (1.0, 10.0) not in f["collapsed_settings"]


def test_vae_sweep_on_a_small_reference():
    from priorlib.priors import Reference
    g = torch.Generator().manual_seed(0)
    ref = Reference.from_activations(torch.randn(400, 8, generator=g) * torch.linspace(0.5, 2, 8), "toy")
    sweep = S6.vae_sweep(ref, betas=(0.5, 8.0), var_matches=(0.0,), epochs=3)
    assert len(sweep) == 2
    assert sweep["active_units"].between(0, sweep["latent_dim"].iloc[0]).all()
    assert np.isfinite(sweep[["variance_ratio", "recon_mse", "kl_total"]].to_numpy()).all()
    # a larger KL weight never buys more information in the latents
    assert sweep["kl_total"].iloc[1] <= sweep["kl_total"].iloc[0] + 1e-6


def _arms(gap, n_seeds=3, plateaued=True):
    import pandas as pd
    return pd.DataFrame([dict(arm=a, seed=k, final_val_loss=2.0 + (gap if a == "vae" else 0.0) + 0.01 * k,
                              initial_val_loss=3.0, plateaued=plateaued)
                         for a in ("vae", "fitted-gaussian") for k in range(n_seeds)])


def test_sample_spread():
    x = torch.zeros(5, 3)
    assert S6.sample_spread(x) == 0.0
    assert S6.sample_spread(torch.eye(3)) == pytest.approx(math.sqrt(2))


def test_06_same_quality_known_answers():
    A, C, I = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE
    assert S6.same_as(_arms(0.0), "vae", "fitted-gaussian").outcome is A
    assert S6.same_as(_arms(0.1), "vae", "fitted-gaussian").outcome is C       # two margins apart
    assert S6.same_as(_arms(0.0, n_seeds=2), "vae", "fitted-gaussian").outcome is I
    assert S6.same_as(_arms(0.0, plateaued=False), "vae", "fitted-gaussian").outcome is I
    findings = {"plain": {"active_units": 1, "latent_dim": 16, "variance_ratio": 0.1, "collapsed": True},
                "n_collapsed": 1, "n_settings": 1}
    rows, num = S6.verdict(findings, _arms(0.1))
    assert [v.outcome for v in rows] == [A, I, C] and "margin ±0.05" in rows[2].measured  # no penalty in the sweep
    assert [v.claim_id for v in rows] == ["vae-collapses", "variance-penalty-insufficient", "vae-same-quality"]
    assert num["same_as_fitted_gaussian"]["vae"]["outcome"] == "contradicts"


def test_variance_penalty_verdict_known_answers():
    """The paper: variance constraints were not sufficient. At γ = 10 every setting keeping its variance
    (ratios 0.51-1.09, as the cpu run found) contradicts it; every setting collapsing agrees."""
    import pandas as pd
    sweep = pd.DataFrame([dict(beta=b, var_match=g, active_units=16, latent_dim=16, variance_ratio=r,
                               collapsed=r < 0.25) for b, g, r in
                          ((1.0, 0.0, 0.05), (4.0, 0.0, 0.02), (1.0, 10.0, 0.51), (4.0, 10.0, 1.09))])
    pen = S6.penalised_findings(sweep)
    assert pen["var_match"] == 10.0 and pen["n"] == 2 and pen["n_collapsed"] == 0
    assert pen["variance_ratio"] == [0.51, 1.09]
    assert S6.penalty_verdict(pen).outcome is V.Outcome.CONTRADICTS
    collapsed = sweep.assign(variance_ratio=0.1, collapsed=True)
    assert S6.penalty_verdict(S6.penalised_findings(collapsed)).outcome is V.Outcome.AGREES
    assert S6.penalised_findings(sweep[sweep["var_match"] == 0.0]) is None
    assert S6.collapse_findings(sweep)["penalised"] == pen


def test_setup_is_recorded_in_results_json(tmp_path):
    s = setup("06_vae", "smoke", out_dir=tmp_path)
    p = V.write_results(s.out_dir, {"b": np.float32(2.0)}, [V.Verdict("c", "m", V.Outcome.AGREES)],
                        notebook=S6.STEM, profile=s.profile, model=s.base.model, settings=s)
    got = json.loads(p.read_text())
    assert got["notebook"] == "06_vae" and got["model"] == got["settings"]["base"]["model"] == "tiny-random-llama"
    assert got["settings"]["base"]["method"] == "deep" and len(got["settings"]["configs"]) == len(s.configs)
    assert got["b"] == 2.0


# ------------------------------------------------------------------------------------------- captions
def test_sweep_and_kl_captions_known_answers():
    sweep = pd.DataFrame([dict(beta=b, var_match=g, active_units=a, latent_dim=16, variance_ratio=r,
                               collapsed=S6.is_collapsed(a, 16, r)) for b, g, a, r in
                          ((1.0, 0.0, 3, 0.05), (4.0, 0.0, 0, 0.02), (1.0, 10.0, 16, 0.51), (4.0, 10.0, 12, 1.09))])
    cap = S6.sweep_caption(sweep, n_rows=400, layer=3, dim=64, epochs=30)
    assert "of 4 VAEs trained for 30 epochs on 400 MATH activation rows (input of layer 3, d = 64)" in cap
    assert "active latent units (KL > 0.01 nats)" in cap
    assert cap.endswith("2 of 4 (β, γ) settings collapse; the plain VAE (β = 1, γ = 0) keeps 3 of 16 latent units "
                        "active and 0.05 of the data's variance; at γ = 10, 0 of 2 collapse, variance ratio 0.51–1.09.")
    cap = S6.sweep_caption(sweep[sweep["var_match"] == 0.0].iloc[1:], n_rows=400, layer=3, dim=64, epochs=30)
    assert cap.endswith("1 of 1 (β, γ) settings collapse.")  # no plain VAE, no penalty: nothing more to say
    kls = {"β=1, γ=0": torch.tensor([0.5, 0.02, 0.005, 0.0]), "β=4, γ=0": torch.full((4,), 0.001)}
    cap = S6.kl_caption(kls)
    assert "of 2 VAEs (one bar colour each)" in cap and "dashed: the 0.01-nat activity threshold" in cap
    assert cap.endswith("Units above it: β=1, γ=0: 2 of 4; β=4, γ=0: 0 of 4.")


def test_arm_captions_are_chapter_05s_on_the_vae_arms():
    df = pd.DataFrame([dict(arm=a, lr=0.01, seed=k, final_accuracy=acc + k, final_val_loss=loss)
                       for a, acc, loss in (("vae", 4.0, 0.52), ("fitted-gaussian", 6.0, 0.50)) for k in range(3)])
    assert S6.accuracy_caption(df, 40).endswith("Per arm: fitted-gaussian 7.0 ± 1.0%; vae 5.0 ± 1.0%; highest: "
                                                "fitted-gaussian.")
    assert S6.val_loss_caption(df, 40).endswith("Lowest: fitted-gaussian 0.500 ± 0.000; against fitted-gaussian's "
                                                "0.500: vae +0.020.")
    assert S6.val_loss_caption(df, 40) == S5.val_loss_caption(df, 40)


@pytest.mark.slow
def test_notebook_06_smoke(smoke_notebook):
    res = smoke_notebook("06_vae")
    assert smoke_notebook.planned("06_vae") == [c.key() for c in S6.plan("smoke")]  # what run_all was asked
    assert res["notebook"] == "06_vae" and res["profile"] == "smoke"
    for key in ("sweep", "collapse", "runs", "quality", "placement", "verdicts", "wall_s", "reference_rows"):
        assert key in res, key
    grid = res["sweep_grid"]
    assert len(res["sweep"]) == len(grid["beta"]) * len(grid["var_match"])
    assert {(r["beta"], r["var_match"]) for r in res["sweep"]} == {(b, v) for b in grid["beta"] for v in grid["var_match"]}
    finite_columns(res["sweep"], ["variance_ratio", "recon_mse", "kl_total"])
    for r in res["sweep"]:
        assert 0 <= r["active_units"] <= r["latent_dim"]
        assert r["collapsed"] == S6.is_collapsed(r["active_units"], r["latent_dim"], r["variance_ratio"])
        assert r["collapse"] == S6.collapse_kind(r["active_units"], r["latent_dim"], r["variance_ratio"])
    assert res["collapse"]["n_collapsed"] == sum(r["collapsed"] for r in res["sweep"])
    assert {r["arm"] for r in res["runs"]} == set(CHAPTERS["06_vae"]["smoke"]["priors"])
    finite_columns(res["runs"], ["initial_val_loss", "final_val_loss", "final_accuracy"])
    finite_columns(res["placement"], ["median_mahalanobis", "spread_vs_reference"])
    assert V.Verdict.from_dict(res["verdicts"][0]).claim == "The VAE prior collapsed"
    assert [v["claim_id"] for v in res["verdicts"]][:2] == ["vae-collapses", "variance-penalty-insufficient"]


def test_linear_capacity_is_the_top_components_share():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 6, generator=g) * torch.tensor([3.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    assert S6.linear_capacity(x, 2) == pytest.approx(13 / 17, abs=0.02)  # (9 + 4) / (9 + 4 + 4)
    assert S6.linear_capacity(x, 6) == pytest.approx(1.0)


def test_collapse_verdict_is_inconclusive_when_the_threshold_is_out_of_reach():
    """Collapsed by the samples' variance alone: agrees when a linear decoder of that width could keep more than
    the threshold (here 0.99), inconclusive when it could not (0.2): the low variance is then the
    architecture's, not a collapse."""
    plain = dict(active_units=16, latent_dim=16, variance_ratio=0.05, collapsed=True, collapse="samples",
                 linear_capacity=0.99)
    f = {"plain": plain, "n_collapsed": 3, "n_settings": 6}
    v = S6.collapse_verdict(f)
    assert v.outcome is V.Outcome.AGREES and "its top 16 principal components hold 0.99" in v.measured
    low = S6.collapse_verdict({**f, "plain": {**plain, "linear_capacity": 0.2}})
    assert low.outcome is V.Outcome.INCONCLUSIVE and "could not reach the variance threshold" in low.measured
    both = S6.collapse_verdict({**f, "plain": {**plain, "linear_capacity": 0.2, "active_units": 1, "collapse": "both"}})
    assert both.outcome is V.Outcome.AGREES  # the latents carry nothing: collapsed whatever the width
    kept = S6.collapse_verdict({**f, "plain": {**plain, "variance_ratio": 0.6, "collapsed": False, "collapse": "none"}})
    assert kept.outcome is V.Outcome.CONTRADICTS
    assert S6.collapse_verdict({**f, "plain": None}).outcome is V.Outcome.INCONCLUSIVE
