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
            "acceptance_rate": 0.1, "acceptance_rate_analytic": 0.1, "hdr_radius": 5.0}
    place = pd.DataFrame([dict(prior=p, when="trained", median_mahalanobis=m) for p, m in
                          (("exclusion", 9.0), ("fitted-gaussian", 3.0))])
    out, num = C03.verdicts(dens, _quality_rows(0.0), place)
    assert [v.outcome for v in out] == [V.Outcome.AGREES] * 4 and "margin ±0.05" in out[2].measured
    assert num["val_loss"]["outcome"] == "agrees"
    assert C03.verdicts(dens, _quality_rows(0.1), place)[0][2].outcome is V.Outcome.CONTRADICTS
    assert [v.claim_id for v in out] == ["token-embeddings-peaked", "exclusion-outside", "exclusion-same-quality",
                                         "exclusion-posterior-outside"]
    # "sharply peaked" is about the vocabulary: its distances spread no more than the fit's draws -> contradicts
    flat = {**dens, "summary": {**dens["summary"], "vocabulary": {**dens["summary"]["vocabulary"], "cv": 0.015}}}
    assert C03.verdicts(flat, _quality_rows(0.0), place)[0][0].outcome is V.Outcome.CONTRADICTS


def test_vocabulary_peaked_known_answers():
    assert C03.vocabulary_peaked(0.137, 0.03) and not C03.vocabulary_peaked(0.05, 0.03)


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
