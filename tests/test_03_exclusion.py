"""Chapter 03 (the exclusion prior): its density check, its results file, and the notebook run end to end with the smoke profile."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from priorlib.compendium import chapter
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from chapter_checks import check_run_results, finite  # noqa: E402

C02, C03, C04 = (chapter(n) for n in ("02_lr_priors", "03_exclusion", "04_activation_spaces"))


# ----------------------------------------------------------------------------------------------- settings


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
    # the vocabulary here is Gaussian: about 5% of it on each side beyond the fit draws' 5-95% range
    assert sm["vocab_below_fit_p05"] == pytest.approx(0.05, abs=0.03)
    assert sm["vocab_above_fit_p95"] == pytest.approx(0.05, abs=0.03)


def _quality_rows(gap, n_seeds=3, plateaued=True):
    import pandas as pd
    return pd.DataFrame([dict(prior=p, seed=k, final_val_loss=2.0 + (gap if p == "exclusion" else 0) + 0.01 * k,
                              final_f1=40.0 + k, plateaued=plateaued)
                         for p in ("exclusion", "fitted-gaussian") for k in range(n_seeds)])


def test_quality_comparison_known_answers():
    A, C, I = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE
    assert C03.quality_comparison(_quality_rows(0.0)).outcome is A          # equal arms
    assert C03.quality_comparison(_quality_rows(0.1)).outcome is C          # two margins apart
    assert C03.quality_comparison(_quality_rows(0.0, n_seeds=2)).outcome is I
    assert C03.quality_comparison(_quality_rows(0.0, plateaued=False)).outcome is I
    assert C03.quality_comparison(_quality_rows(0.0), "final_f1").margin == 3.0


def test_verdicts_03_decide_quality_with_the_protocol():
    import pandas as pd
    arm = {"median": 10.0, "sd": 0.1, "cv": 0.01, "share_in_hdr": 0.0}
    dens = {"summary": {"exclusion": arm, "vocabulary": {**arm, "cv": 0.2, "share_in_hdr": 0.95},
                        "fitted-gaussian": {**arm, "share_in_hdr": 0.95}},
            "acceptance_rate": 0.1, "acceptance_rate_analytic": 0.1, "hdr_radius": 5.0, "c": 5.0, "dim": 576}
    place = pd.DataFrame([dict(prior=p, when="trained", median_mahalanobis=m) for p, m in
                          (("exclusion", 9.0), ("fitted-gaussian", 3.0))])
    out, num = C03.verdicts(dens, _quality_rows(0.0), place)
    assert "control); 95% radius 5.0. The fitted-Gaussian prompts end inside" in out[3].measured
    assert "sd/mean 0.200), draws from the fit 10.0 ± 0.10 (sd/mean 0.010): the vocabulary spreads relative to its " \
           "mean 20.0× as much" in out[0].measured
    # the verdict takes the placement table's statistic: the mean of the seeds' medians (16), not their median (9)
    seeds = _trained({"exclusion": (9.0, 9.0, 30.0), "fitted-gaussian": (6.0, 6.0, 6.0)})
    o2, n2 = C03.verdicts(dens, _quality_rows(0.0), seeds)
    assert n2["trained_median_mahalanobis_exclusion"] == 16.0 and n2["trained_median_mahalanobis_fitted"] == 6.0
    assert o2[3].outcome is V.Outcome.AGREES and "mean over 3 seeds): 16.0 (exclusion) vs 6.0" in o2[3].measured
    assert "end outside too at lr 0.05, so it is not the prior that keeps them out" in o2[3].measured
    A = V.Outcome.AGREES
    assert [v.outcome for v in out] == [A, V.Outcome.HOLDS_BY_CONSTRUCTION, A, A] and "margin ±0.05" in out[2].measured
    assert num["val_loss"]["outcome"] == "agrees"
    assert C03.verdicts(dens, _quality_rows(0.1), place)[0][2].outcome is V.Outcome.CONTRADICTS
    assert [v.claim_id for v in out] == ["token-embeddings-peaked", "exclusion-outside", "exclusion-same-quality",
                                         "exclusion-posterior-outside"]
    # "sharply peaked" is about the vocabulary: its distances spread no more than the fit's draws -> contradicts
    flat = {**dens, "summary": {**dens["summary"], "vocabulary": {**dens["summary"]["vocabulary"], "cv": 0.015}}}
    assert C03.verdicts(flat, _quality_rows(0.0), place)[0][0].outcome is V.Outcome.CONTRADICTS


def test_exclusion_outside_holds_by_construction_only_when_the_definition_bounds_it():
    """c = 5 in 576 dims: at most chi2_d.cdf(chi2_d^-1(0.95)/5) ~ 4e-94 of the proposals can land inside, so
    the claim is not evidence; c = 1.2 leaves 7.3% to the measurement; a bad sampler still contradicts."""
    from scipy import stats
    measured, outcome = C03.outside_by_construction(0.0, 5.0, 576, 0.98, 0.95)
    assert outcome is V.Outcome.HOLDS_BY_CONSTRUCTION and "not counted as support" in measured
    assert "0.0% of draws inside the fit's 95% region (vocabulary: 98.0%, fitted Gaussian: 95.0%)" in measured
    assert f"= {stats.chi2.cdf(stats.chi2.ppf(0.95, 576) / 5, 576):.2g} inside (c = 5, d = 576)" in measured
    assert C03.outside_by_construction(0.02, 1.2, 576)[1] is V.Outcome.AGREES
    assert C03.outside_by_construction(0.06, 1.2, 576)[1] is V.Outcome.CONTRADICTS
    assert C03.outside_by_construction(0.05, 5.0, 576)[1] is V.Outcome.CONTRADICTS  # at the threshold: not under


def test_vocabulary_peaked_known_answers():
    assert C03.vocabulary_peaked(0.137, 0.03) and not C03.vocabulary_peaked(0.05, 0.03)
    assert C03.PEAKED_FACTOR == 2.0 and not C03.vocabulary_peaked(0.06, 0.03)  # twice is not "above twice"


_CONVERGED_SUMMARY = {"vocabulary": dict(median=22.889, sd=3.252, cv=0.137), "exclusion": dict(median=53.614, sd=1.532, cv=0.029),
                      "fitted-gaussian": dict(median=23.973, sd=0.713, cv=0.030),
                      "vocab_below_fit_p05": 0.31, "vocab_above_fit_p95": 0.30}


def test_peaked_reason_says_what_peaked_means_and_the_rule():
    from priorlib.compendium.margins import RULES
    txt = C03.peaked_reason(_CONVERGED_SUMMARY)
    assert "relative to a Gaussian of the same mean and covariance, more mass near the centre and in the tails" in txt
    assert "median ± sd: vocabulary 22.9 ± 3.25 (sd/mean 0.137), draws from the fit 24.0 ± 0.71 (sd/mean 0.030)" in txt
    assert "4.6× as much as the fit's own draws, and its median is below theirs" in txt  # 0.137 / 0.030
    assert "31% of the vocabulary lies closer than the draws' 5th percentile and 30% farther than their 95th" in txt
    rule = next(r.rule for r in RULES if r.claim_id == "token-embeddings-peaked")
    assert f"Rule (sd/mean): {rule} (threshold 2×)" in txt
    above = {**_CONVERGED_SUMMARY, "vocabulary": {**_CONVERGED_SUMMARY["vocabulary"], "median": 30.0}}
    assert "its median is not below theirs" in C03.peaked_reason(above)


def test_outside_reason_says_whether_the_control_ends_outside_too():
    stat = "median over a prompt's vectors, mean over 3 seeds"
    out = C03.outside_reason("exclusion", 165.04, 154.0, 25.2, [0.05], stat)
    assert out == ("trained Mahalanobis distance (median over a prompt's vectors, mean over 3 seeds): 165.0 (exclusion) "
                   "vs 154.0 (fitted Gaussian, the control); 95% radius 25.2. The fitted-Gaussian prompts end outside "
                   "too at lr 0.05, so it is not the prior that keeps them out: this check cannot tell the priors apart")
    assert C03.outside_reason("exclusion", 165.0, 20.0, 25.2).endswith("The fitted-Gaussian prompts end inside: here "
                                                                       "the priors end apart")


def _trained(medians: dict, lrs=(0.05,)) -> "pd.DataFrame":
    import pandas as pd
    return pd.DataFrame([dict(prior=p, lr=lr, seed=k, when="trained", median_mahalanobis=m)
                         for p, ms in medians.items() for lr in lrs for k, m in enumerate(ms)])


def test_statistic_and_placement_sentence_name_the_tables_statistic():
    place = _trained({"exclusion": (9.0, 9.0, 30.0), "fitted-gaussian": (3.0, 3.0, 3.0)})
    assert C03.statistic(place) == "median over a prompt's vectors, mean over 3 seeds"
    assert C03.placement_sentence(place, 5.0) == ("Trained prompts' Mahalanobis distance (median over a prompt's "
                                                  "vectors, mean over 3 seeds): exclusion 16.0, fitted-gaussian 3.0 "
                                                  "(95% radius 5.0).")
    two = _trained({"exclusion": (9.0,), "fitted-gaussian": (3.0,)}, lrs=(1e-3, 5e-2))
    assert C03.statistic(two) == "median over a prompt's vectors, mean over 2 runs (2 learning rates pooled)"


def test_radius_variant_verdicts_known_answers():
    import pandas as pd
    from priorlib.priors import Reference
    ref = Reference(torch.randn(5000, 16, generator=torch.Generator().manual_seed(0)), "toy")
    dens = C03.exclusion_density(ref, c=5.0, n=500)
    rad = dens["radius_variant"]
    assert rad["rejection_rate_predicted"] == pytest.approx(0.95)
    assert dens["summary"]["exclusion-radius"]["share_in_hdr"] == 0.0  # every kept draw lies outside the radius
    rows = pd.concat([_quality_rows(0.0), _quality_rows(0.0).assign(prior=lambda d: d["prior"].where(
        d["prior"] != "exclusion", "exclusion-radius")).query("prior == 'exclusion-radius'")])
    trained = pd.DataFrame([dict(prior=p, when="trained", median_mahalanobis=m) for p, m in
                            (("exclusion", 9.0), ("exclusion-radius", 2.0), ("fitted-gaussian", 3.0))])
    out = C03.radius_verdicts(dens, rows, trained)
    assert [v.outcome for v in out] == [V.Outcome.AGREES, V.Outcome.AGREES, V.Outcome.CONTRADICTS]
    assert "2.0 (exclusion-radius) vs 3.0 (fitted Gaussian, the control)" in out[2].measured
    far = C03.radius_verdicts(dens, rows, _trained({"exclusion-radius": (150.0,) * 3, "fitted-gaussian": (152.0,) * 3}))
    assert far[2].outcome is V.Outcome.AGREES and "cannot tell the priors apart" in far[2].measured
    assert [v.claim_id for v in out] == ["radius-rejection-rate", "radius-same-quality", "radius-posterior-outside"]
    off = {**dens, "radius_variant": {**rad, "rejection_rate": rad["rejection_rate_predicted"] - 0.05}}
    assert C03.radius_verdicts(off, rows, trained)[0].outcome is V.Outcome.CONTRADICTS  # 0.90 observed: wrong
    # the chapter's verdicts list carries the variant's rows only when it was trained
    allv, num = C03.verdicts(dens, rows, trained)
    assert len(allv) == 7 and "radius_variant" in num
    assert len(C03.verdicts(dens, _quality_rows(0.0), trained)[0]) == 4


def test_settings_are_recorded_in_results_json(tmp_path):
    s = setup("03_exclusion", "smoke", out_dir=tmp_path)
    path = V.write_results(s.out_dir, {"x": float("nan")}, [V.Verdict("c", "m", V.Outcome.INCONCLUSIVE)],
                           notebook=C03.STEM, profile=s.profile, model=s.model, settings=s)
    d = json.loads(path.read_text())
    assert d["notebook"] == "03_exclusion" and d["model"] == d["settings"]["model"] == "tiny-random-llama"
    assert d["settings"]["priors"] == s.priors and d["settings"]["out_dir"] == str(tmp_path) and d["x"] is None


@pytest.mark.slow
def test_notebook_03_smoke(smoke_notebook):
    res = smoke_notebook("03_exclusion")
    assert smoke_notebook.planned("03_exclusion") == [c.key() for c in C03.plan("smoke")]  # what run_all was asked
    check_run_results(res, "03_exclusion", 7)  # the paper's 4, and 3 for the radius variant
    assert {r["prior"] for r in res["runs"]} == {"exclusion", "exclusion-radius", "fitted-gaussian"}
    d = res["density"]
    assert 0 < d["acceptance_rate"] <= 1 and finite(d["hdr_radius"])
    assert d["summary"]["exclusion"]["median"] > d["summary"]["vocabulary"]["median"]
    assert {q["prior"] for q in res["quality"]} == {"exclusion", "exclusion-radius", "fitted-gaussian"}
    assert res["numbers"]["share_exclusion_in_hdr"] == d["summary"]["exclusion"]["share_in_hdr"]
