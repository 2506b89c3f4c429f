"""Chapter 01 (the activation atlas): its settings, its SQuAD prompts with token roles, question 5, and the
notebook run end to end with the smoke profile.

The measurements the chapter asks its questions with are tested by library module: test_activations,
test_hooks, test_trajectories, test_shape, test_clusters, test_answers, test_projection, test_cache.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from priorlib.compendium import chapter
from priorlib.compendium.profiles import CHAPTERS
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup

atlas = chapter("01_proof_of_concept")
REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "01_proof_of_concept.ipynb"


# ------------------------------------------------------------------------------------- profiles
def test_settings_defaults_and_overrides():
    cfg = setup("01_proof_of_concept", "cpu", n_web=None, layers=[-1, 3], seed=7)
    assert cfg.model == "smollm2-135m" and cfg.n_web == CHAPTERS["01_proof_of_concept"]["cpu"]["n_web"]
    assert cfg.layers == (-1, 3) and cfg.seed == 7
    assert setup("01_proof_of_concept", "smoke").model == "tiny-random-llama"
    assert setup("01_proof_of_concept", "paper").model == "llama-3.2-1b"
    with pytest.raises(ValueError, match="unknown profile"):
        setup("01_proof_of_concept", "huge")
    with pytest.raises(ValueError, match="unknown parameter"):
        setup("01_proof_of_concept", "cpu", n_webs=3)


# ------------------------------------------------------------------------------------- task clusters
def test_question5_scores_with_the_one_cluster_measure(tmp_path, monkeypatch):
    from priorlib.metrics.clusters import domain_separation

    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    rng = np.random.default_rng(0)
    points = ["embed", "layers.0.resid_post", "layers.1.resid_post"]
    n = {"web": 30, "squad": 30, "math": 24}
    caps = {k: {f"mean|{p}": rng.normal(size=(m, 6)) + (5.0 if k == "math" else 0.0) for p in points}
            for k, m in n.items()}
    inputs = {"web": ["w"] * 30, "squad": ["s"] * 30, "math_module": ["mul", "div"] * 12}
    q5 = atlas.question5(caps, inputs, points, setup("01_proof_of_concept", "smoke"))
    tasks = np.array(["web"] * 30 + ["squad"] * 30 + ["mul", "div"] * 12)
    want = domain_separation(np.concatenate([caps[k]["mean|layers.1.resid_post"] for k in n]), tasks)
    assert q5["silhouette_math_vs_nlp"] == want["silhouette_math_vs_nlp"] > 0.4
    assert q5["probe_squad_vs_web"] == want["probe_squad_vs_web"]
    assert list(q5["table"].depth) == [0, 1, 2] and q5["share_layers_math_further"] == 1.0
    assert q5["separation"]["math_vs_nlp"].outcome is V.Outcome.AGREES  # MATH shifted by 5 sd
    assert q5["separation"]["squad_vs_web"].outcome is not V.Outcome.AGREES  # one distribution
    assert atlas.verdict_q5(q5).outcome is not V.Outcome.CONTRADICTS


# a separation's interval for each outcome of the cluster rule (null 95% quantile 0.002): well apart ("agrees",
# separated), below the null ("contradicts"), straddling the null and its + 0.05 margin ("inconclusive"), a hair
# above the null ("hair": separated by the cluster rule, one cluster by the margin)
_CI = {"agrees": (0.20, 0.30), "contradicts": (-0.01, 0.001), "inconclusive": (0.0, 0.07), "hair": (0.003, 0.006)}


def _sep(outcome):
    from priorlib.protocol import Separation
    lo, hi = _CI[outcome]
    rule = "agrees" if lo > 0.002 else "contradicts" if hi <= 0.002 else "inconclusive"
    return Separation("silhouette", (lo + hi) / 2, lo, hi, 0.95, 0.0, 0.002, 400, 400, lo > 0.002,
                      V.Outcome(rule), f"{outcome} by construction")


def test_verdict_q5_needs_math_apart_and_squad_in_one_cluster():
    A, C, I = "agrees", "contradicts", "inconclusive"
    for math_o, squad_o, want in ((A, C, A), (A, A, C), (C, C, C), (A, I, I), (I, C, I), (A, "hair", A)):
        q5 = {"separation": {"math_vs_nlp": _sep(math_o), "squad_vs_web": _sep(squad_o)}}
        assert atlas.verdict_q5(q5).outcome is V.Outcome(want), (math_o, squad_o)


def _questions(upper: float, embed: float, squad="contradicts"):
    """Minimal q1..q5, qa, qm for :func:`verdicts`: jumpy embedding paths, the given upper-layer and embedding
    step ratios, one unimodal layer, SQuAD vs web separated or not (``squad``), answer spans and MATH modules."""
    q1 = {"test": {"vocab": {"median_ratio": 0.9, "cliffs_delta": -0.1, "share_shorter": 0.6, "p_value": 0.01}}}
    q2 = {"upper_median_ratio": upper, "embed_median_ratio": embed, "upper_cliffs_delta": -0.5}
    q3 = {"separation": _sep(squad), "overlap": {"mixing": 0.5, "probe_accuracy": 0.8}}
    q4 = {"n_bimodal": 0, "n_layers": 3}
    q5 = {"separation": {"math_vs_nlp": _sep("agrees"), "squad_vs_web": _sep(squad)}}
    qa = {"decision": atlas.answers_closer([0.5] * 12), "spans": {"n_short": 3}, "n_squad": 15, "n_draws": 20}
    qm = {"separation": _sep("inconclusive"), "n_modules": 6, "n_texts": 24}
    return q1, q2, q3, q4, q5, qa, qm


def test_verdicts_test_the_papers_words_trajectories_do_not_localise():
    """The paper: upper-layer trajectories still do not localise. A localised path (0.79 < 1 and below the
    embeddings' 1.02, as the cpu run measured) contradicts it; a ratio at or above 1 agrees."""
    assert atlas.trajectories_localise({"upper_median_ratio": 0.79, "embed_median_ratio": 1.02})
    assert not atlas.trajectories_localise({"upper_median_ratio": 1.05, "embed_median_ratio": 1.02})
    assert not atlas.trajectories_localise({"upper_median_ratio": 0.95, "embed_median_ratio": 0.90})
    got = atlas.verdicts(*_questions(0.79, 1.02))
    assert got[1].claim_id == "activation-paths-not-local" and got[1].outcome is V.Outcome.CONTRADICTS
    assert atlas.verdicts(*_questions(1.05, 1.02))[1].outcome is V.Outcome.AGREES
    assert [v.claim_id for v in got] == ["embedding-paths-jumpy", "activation-paths-not-local", "squad-near-web",
                                         "answer-tokens-close", "single-cloud", "task-clusters",
                                         "math-modules-apart"]
    assert got[3].outcome is V.Outcome.AGREES and got[6].outcome is V.Outcome.INCONCLUSIVE
    # SQuAD and web text not separated: the paper's "one cluster" agrees; separated: contradicts
    assert got[2].outcome is V.Outcome.AGREES
    assert atlas.verdicts(*_questions(0.79, 1.02, squad="agrees"))[2].outcome is V.Outcome.CONTRADICTS
    # a hair apart (beats the null, inside the silhouette margin): still one cluster, and the row says why
    hair = atlas.verdicts(*_questions(0.79, 1.02, squad="hair"))[2]
    assert hair.outcome is V.Outcome.AGREES and "one cluster: silhouette 0.005, 95% CI [0.003, 0.006]" in hair.measured


# ------------------------------------------------------------------------------------- SQuAD roles
def test_squad_roles(tiny):
    from priorlib.data.examples import Example

    _, tok = tiny
    ctx = "Paris is the capital of France. It is known for the Eiffel Tower."
    prompt = f"{ctx}\nQuestion: What is the capital of France?\nAnswer:"
    ex = Example(prompt=prompt, target=" Paris", answers=("Paris",), keep_span=(0, 5))
    texts, roles = atlas.squad_texts_with_roles(tok, [ex, ex], n=1, max_tokens=100, seed=0)
    assert texts == [prompt] and len(roles) == 1
    enc = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
    words = {name: "".join(prompt[s:e] for (s, e), r in zip(enc["offset_mapping"], roles[0]) if r == i)
             for i, name in enumerate(atlas.ROLE_NAMES)}
    assert words["answer"].strip() == "Paris"
    assert "capital of France?" in words["question"] and "Question" not in words["question"]
    assert "Answer:" in words["template"]
    with pytest.raises(ValueError, match="only 1 SQuAD prompts"):
        atlas.squad_texts_with_roles(tok, [ex], n=2, max_tokens=100, seed=0)


# ------------------------------------------------------------------------------------- the notebook
def _finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _finite_numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def test_source_notebook_is_clean():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "remove-cell" in tagged[0].metadata["tags"]
    for name in ("profile", "model", "n_web", "n_squad", "n_math_per_module", "layers", "seed", "max_length",
                 "tsne_perplexity", "out_dir"):
        assert f"\n{name} = " in "\n" + tagged[0].source
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_notebook_01_smoke(tmp_path, monkeypatch):
    pm = pytest.importorskip("papermill")
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "artifacts"))  # compute, do not reuse a cache
    out_dir = tmp_path / "out"
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "01.ipynb"), kernel_name="python3", cwd=str(REPO),
                        parameters={"profile": "smoke", "out_dir": str(out_dir)}, progress_bar=False)
    res = json.loads((out_dir / "results.json").read_text())
    assert res["notebook"] == "01_proof_of_concept" and res["profile"] == "smoke"
    assert res["model"] == res["settings"]["model"] == "tiny-random-llama"
    assert "stand-in for C4" in res["web_source"] or "C4" in res["web_source"]
    for key in ("q1", "q2", "q3", "q4", "q5", "answer_spans", "math_modules", "verdicts", "wall_seconds"):
        assert key in res
    assert set(res["q1"]) == {"vocab", "unigram", "shuffled"}
    for t in res["q1"].values():
        assert t["median_ratio"] > 0 and -1 <= t["cliffs_delta"] <= 1 and 0 <= t["p_value"] <= 1
    assert len(res["q2"]["per_layer"]) == 5  # embeddings + 4 blocks of the tiny model
    assert 0 <= res["q3"]["overlap"]["mixing"] <= 2 and 0 <= res["q3"]["overlap"]["probe_accuracy"] <= 1
    assert 0 <= res["q4"]["n_bimodal"] <= res["q4"]["n_layers"] == 5
    for k in ("silhouette_math_vs_nlp", "silhouette_squad_vs_web"):
        assert -1 <= res["q5"][k] <= 1
    assert len(res["verdicts"]) == 7 and {v["outcome"] for v in res["verdicts"]} <= {o.value for o in V.Outcome}
    assert res["math_modules"]["n_modules"] == 6 and -1 <= res["math_modules"]["separation"]["estimate"] <= 1
    assert res["answer_spans"]["n_prompts"] == len(res["answer_spans"]["ratios"])
    numbers = list(_finite_numbers({k: res[k] for k in ("q1", "q2", "q3", "q4", "q5", "math_modules")}))
    assert numbers and all(math.isfinite(x) for x in numbers)
    assert list((tmp_path / "artifacts").glob("nb01-web-*.json"))  # the capture went through the cache


@pytest.mark.slow
def test_notebook_01_twice_from_scratch_gives_identical_results(tmp_path):
    """Issue 19: two executions, each with an empty artifact cache, agree on every result value."""
    import os
    pm = pytest.importorskip("papermill")
    results = []
    for i in (1, 2):
        os.environ["PRIORLIB_ARTIFACTS"] = str(tmp_path / f"artifacts{i}")
        try:
            pm.execute_notebook(str(NOTEBOOK), str(tmp_path / f"01-{i}.ipynb"), kernel_name="python3", cwd=str(REPO),
                                parameters={"profile": "smoke", "out_dir": str(tmp_path / f"out{i}")},
                                progress_bar=False)
        finally:
            del os.environ["PRIORLIB_ARTIFACTS"]
        res = json.loads((tmp_path / f"out{i}" / "results.json").read_text())
        results.append({k: res[k] for k in ("q1", "q2", "q3", "q4", "q5", "answer_spans", "math_modules", "verdicts")})
    a, b = (list(_finite_numbers(r)) for r in results)
    assert len(a) == len(b) > 100
    assert results[0] == results[1]  # bitwise: the same floats, the same verdict texts
