"""Chapter 02 (learning rate and prior): its verdicts, and the notebook run end to end with the smoke profile."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from priorlib.compendium import runs as sec
from priorlib.compendium import chapter
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from chapter_checks import check_run_results, finite, rows_and_placement  # noqa: E402

C02, C03, C04 = (chapter(n) for n in ("02_lr_priors", "03_exclusion", "04_activation_spaces"))


# ----------------------------------------------------------------------------------------------- settings


def test_sentences_name_the_stand_in_and_the_extra_rates():
    s = setup("02_lr_priors", "cpu")
    assert "SmolLM2-135M-Instruct stands in for the paper's Llama-3.2-1B" in sec.model_sentence(s)
    txt = sec.lr_sentence(s)
    assert "0.0005" in txt and "Added here: 0.05" in txt


def test_verdicts_02_from_synthetic_numbers():
    rows, place = rows_and_placement()
    s = setup("02_lr_priors", "cpu", learning_rates=[5e-4, 5e-3])
    out, num = C02.verdicts(rows, place, {"median_nn_l2": 0.5}, s)
    assert [v.outcome for v in out] == [V.Outcome.AGREES] * 3
    assert num["share_paper_lr_runs_moved_less_than_token_gap"] == 1.0
    assert list(V.frame(out)["verdict"]) == ["agrees"] * 3
    _, num = C02.verdicts(rows, place, {"median_nn_l2": 0.05}, s)
    assert num["share_paper_lr_runs_moved_less_than_token_gap"] == 0.0


# ----------------------------------------------------------------------------------------------- notebooks
@pytest.mark.slow
def test_notebook_02_smoke(smoke_notebook):
    res = smoke_notebook("02_lr_priors")
    s = res["settings"]
    check_run_results(res, "02_lr_priors", 3)
    assert len(res["quality"]) == len(s["priors"]) * len(s["learning_rates"])  # one row per prior x lr
    assert {q["prior"] for q in res["quality"]} == set(s["priors"])
    assert len(res["placement"]) == 2 * res["n_runs"]
    for p in res["placement"]:
        assert finite(p["median_nn_l2"]) and finite(p["median_mahalanobis"]) and 0 <= p["share_in_hdr"] <= 1
    vocab = [p for p in res["placement"] if p["prior"] == "vocab-sample" and p["when"] == "sampled"]
    assert vocab and all(p["median_nn_l2"] < 1e-4 for p in vocab)  # vocab samples are token embeddings
    assert finite(res["numbers"]["vocab_median_nn_l2"])
