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
    rows, place = rows_and_placement(3, plateaued=True)
    s = setup("02_lr_priors", "cpu", learning_rates=[5e-4, 5e-3])
    out, num = C02.verdicts(rows, place, {"median_nn_l2": 0.5}, s, dim=10_000)
    # no vocab-sample arm in this grid: no-prior-improves cannot be decided (tests/test_02_claims.py has its answers)
    assert [v.outcome for v in out] == [V.Outcome.AGREES] * 4 + [V.Outcome.INCONCLUSIVE]
    assert num["share_paper_lr_runs_moved_less_than_token_gap"] == 1.0 and num["movement_bound_paper_lrs"] > 0.5
    assert list(V.frame(out)["verdict"]) == ["agrees"] * 4 + ["inconclusive"]
    assert "margin ±0.05" in out[2].measured
    assert [v.claim_id for v in out] == ["prior-decides-posterior", "prompts-stay-near-prior",
                                         "quality-independent-of-prior", "no-collapse", "no-prior-improves"]
    out, num = C02.verdicts(rows, place, {"median_nn_l2": 0.05}, s, dim=10_000)
    assert num["share_paper_lr_runs_moved_less_than_token_gap"] == 0.0 and out[1].outcome is V.Outcome.CONTRADICTS


def test_02_stay_claim_is_not_testable_when_the_optimiser_could_not_move_that_far():
    rows, place = rows_and_placement(3, plateaued=True)
    s = setup("02_lr_priors", "cpu", learning_rates=[5e-4, 5e-3])
    bound = C02.verdicts(rows, place, {"median_nn_l2": 0.5}, s, dim=10_000)[1]["movement_bound_paper_lrs"]
    out, _ = C02.verdicts(rows, place, {"median_nn_l2": 2 * bound}, s, dim=10_000)
    assert out[1].outcome is V.Outcome.NOT_TESTABLE and "not testable" in out[1].measured
    assert C02.verdicts(rows, place, {"median_nn_l2": 0.5}, s)[0][1].outcome is V.Outcome.INCONCLUSIVE  # no dim


def test_02_same_quality_known_answers():
    lr = 5e-3
    assert C02.same_quality_across_priors(rows_and_placement(3, plateaued=True)[0], lr)[0] is V.Outcome.AGREES
    far = rows_and_placement(3, gap=0.1, plateaued=True)[0]  # two margins apart
    assert C02.same_quality_across_priors(far, lr)[0] is V.Outcome.CONTRADICTS
    assert C02.same_quality_across_priors(rows_and_placement(2, plateaued=True)[0], lr)[0] is V.Outcome.INCONCLUSIVE
    assert C02.same_quality_across_priors(rows_and_placement(3, plateaued=False)[0], lr)[0] is V.Outcome.INCONCLUSIVE
    assert C02.same_quality_across_priors(rows_and_placement(3)[0], lr)[0] is V.Outcome.INCONCLUSIVE  # unknown


# ----------------------------------------------------------------------------------------------- notebooks
@pytest.mark.slow
def test_notebook_02_smoke(smoke_notebook):
    res = smoke_notebook("02_lr_priors")
    assert smoke_notebook.planned("02_lr_priors") == [c.key() for c in C02.plan("smoke")]  # what run_all was asked
    s = res["settings"]
    check_run_results(res, "02_lr_priors", 5)
    assert len(res["quality"]) == len(s["priors"]) * len(s["learning_rates"])  # one row per prior x lr
    assert {q["prior"] for q in res["quality"]} == set(s["priors"])
    assert len(res["placement"]) == 2 * res["n_runs"]
    for p in res["placement"]:
        assert finite(p["median_nn_l2"]) and finite(p["median_mahalanobis"]) and 0 <= p["share_in_hdr"] <= 1
    vocab = [p for p in res["placement"] if p["prior"] == "vocab-sample" and p["when"] == "sampled"]
    assert vocab and all(p["median_nn_l2"] < 1e-4 for p in vocab)  # vocab samples are token embeddings
    assert finite(res["numbers"]["vocab_median_nn_l2"])


REPO = Path(__file__).resolve().parents[1]
SHARED_SQUAD = REPO.parent / "shared" / "data" / "squad"


@pytest.mark.slow
def test_notebook_02_takes_priors_as_a_string_and_finds_the_data_itself(smoke_notebook, monkeypatch):
    """``papermill 02_lr_priors.ipynb out.ipynb -p priors '["isotropic","xavier"]'`` passes a string: the
    notebook runs exactly those two priors (it used to iterate the characters: "unknown prior '['"). Plain
    papermill, no $PRIORLIB_DATA: the kernel finds ../shared/data beside the checkout as `priorlib book` does."""
    if not SHARED_SQUAD.is_dir():
        pytest.skip(f"no {SHARED_SQUAD} beside this checkout")
    monkeypatch.delenv("PRIORLIB_DATA", raising=False)  # the kernel inherits this process's environment
    res = smoke_notebook("02_lr_priors", priors='["isotropic","xavier"]')
    assert res["settings"]["priors"] == ["isotropic", "xavier"]
    assert sorted({r["prior"] for r in res["runs"]}) == ["isotropic", "xavier"]
    assert len(res["runs"]) == 2 * len(res["settings"]["learning_rates"]) * len(res["settings"]["seeds"][:1])
    assert sorted({q["prior"] for q in res["quality"]}) == ["isotropic", "xavier"]


def test_notebook_02_refuses_a_bad_list_in_its_setup_cell(tmp_path, monkeypatch):
    """``-p learning_rates abc``: the setup cell (before any model loads) raises one line naming it."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    monkeypatch.setenv("PRIORLIB_RUNS", str(tmp_path / "runs"))
    with pytest.raises(PapermillExecutionError) as info:
        pm.execute_notebook(str(REPO / "notebooks" / "02_lr_priors.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"profile": "smoke", "learning_rates": "abc", "out_dir": str(tmp_path / "o")},
                            kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False)
    err = info.value
    assert err.ename == "ValueError" and err.evalue == "parameter learning_rates: expected a number, got 'abc'"
    assert "S = setup(" in err.source and "load" not in err.source  # the failing cell is the setup cell
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o").exists()


def test_paper_rates_phrase_names_the_rates_used():
    C = chapter("02_lr_priors")
    assert C.paper_rates_phrase([1e-3, 1e-3, 5e-2]) == "at the paper's rate 0.001 (of 0.0005, 0.001, 0.005)"
    assert C.paper_rates_phrase([5e-4, 5e-3]) == "at the paper's rates 0.0005, 0.005 (of 0.0005, 0.001, 0.005)"
    assert C.paper_rates_phrase([5e-2]) == "at none of the paper's rates (0.0005, 0.001, 0.005)"
