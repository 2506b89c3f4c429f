"""Unit tests of chapter 01_proof_of_concept: its settings and its SQuAD prompts with token roles.

The measurements the chapter asks its questions with are tested by library module: test_activations,
test_hooks, test_trajectories, test_shape, test_clusters, test_answers, test_projection, test_cache.
"""
import numpy as np
import pytest

from priorlib.compendium import chapter
atlas = chapter("01_proof_of_concept")
from priorlib.compendium.setup import setup
from priorlib.compendium.profiles import CHAPTERS


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
    assert atlas.verdict_q5(q5)["agrees"] is True


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
