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


def test_settings_are_recorded_in_results_json(tmp_path):
    s = setup("03_exclusion", "smoke", out_dir=tmp_path)
    path = V.write_results(s.out_dir, {"x": float("nan")}, [V.Verdict("c", "m", V.Outcome.NOT_TESTED)],
                           notebook=C03.STEM, profile=s.profile, model=s.model, settings=s)
    d = json.loads(path.read_text())
    assert d["notebook"] == "03_exclusion" and d["model"] == d["settings"]["model"] == "tiny-random-llama"
    assert d["settings"]["priors"] == s.priors and d["settings"]["out_dir"] == str(tmp_path) and d["x"] is None


@pytest.mark.slow
def test_notebook_03_smoke(smoke_notebook):
    res = smoke_notebook("03_exclusion")
    check_run_results(res, "03_exclusion", 4)
    d = res["density"]
    assert 0 < d["acceptance_rate"] <= 1 and finite(d["hdr_radius"])
    assert d["summary"]["exclusion"]["median"] > d["summary"]["vocabulary"]["median"]
    assert {q["prior"] for q in res["quality"]} == {"exclusion", "fitted-gaussian"}
    assert res["numbers"]["share_exclusion_in_hdr"] == d["summary"]["exclusion"]["share_in_hdr"]
