"""Chapter 04 (activation spaces, deep prompts): its run keys, its picture rows, and the notebook run end to end with the smoke profile."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from priorlib.compendium import runs as sec
from priorlib.compendium import chapter
from priorlib.compendium.setup import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from chapter_checks import check_run_results  # noqa: E402

C02, C03, C04 = (chapter(n) for n in ("02_lr_priors", "03_exclusion", "04_activation_spaces"))


# ----------------------------------------------------------------------------------------------- settings


def test_notebook_04_token_baseline_shares_run_keys_with_notebook_02():
    """The soft/fitted-Gaussian baseline of 04 is the same run as 02's at lr 5e-3 (reused, not retrained)."""
    from priorlib.compendium import experiments as ex
    s2, s4 = setup("02_lr_priors", "cpu"), setup("04_activation_spaces", "cpu")
    keys2 = {c.key() for c in sec.lr_seed_grid(s2, s2.base())}
    keys4 = {c.key() for c in ex.grid(s4.base(), variant=[dict(prior="fitted-gaussian", method="soft",
                                                              soft_space="tokens")], lr=[5e-3], seed=s4.seeds)}
    assert keys4 <= keys2


def test_robust_rows_drops_the_largest_norms():
    x = torch.ones(100, 4)
    x[0] *= 1000
    rows, info = C04.robust_rows(x, q=0.98)
    assert len(rows) == 99 and info["dropped"] == 1 and info["max_over_median_norm"] == pytest.approx(1000)


@pytest.mark.slow
def test_notebook_04_smoke(smoke_notebook):
    res = smoke_notebook("04_activation_spaces")
    check_run_results(res, "04_activation_spaces", 4)
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
