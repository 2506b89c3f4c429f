"""Unit tests of chapter 01_proof_of_concept on synthetic data with fixed seeds (priorlib.cache: test_cache)."""
import numpy as np
import pytest
import torch

from priorlib.compendium import chapter
atlas = chapter("01_proof_of_concept")
from priorlib.cache import artifacts_dir
from priorlib.compendium.setup import setup
from priorlib.compendium.profiles import CHAPTERS


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("PRIORLIB_NO_CACHE", raising=False)


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


# ------------------------------------------------------------------------------------- steps
def _walk(rng, n, d, step):
    return np.cumsum(rng.normal(scale=step, size=(n, d)), axis=0)


def test_step_test_detects_shorter_steps():
    rng = np.random.default_rng(0)
    real = [np.abs(rng.normal(0.5, 0.1, 40)) for _ in range(30)]
    rand = [np.abs(rng.normal(1.0, 0.1, 40)) for _ in range(30)]
    r = atlas.step_test(real, rand)
    assert r["median_ratio"] < 0.6 and r["cliffs_delta"] < -0.9 and r["p_value"] < 1e-10
    assert r["share_shorter"] == 1.0 and r["p_value_per_text"] < 1e-5
    same = atlas.step_test(real, [a[rng.permutation(len(a))] for a in real])
    assert abs(same["cliffs_delta"]) < 1e-9 and same["median_ratio"] == pytest.approx(1.0)


def test_token_step_test_smooth_vs_jumpy():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(500, 16, generator=g)
    # "sentences" that walk through neighbouring rows: emb sorted along a 1-D curve
    order = torch.argsort(emb[:, 0])
    texts = [order[s:s + 20].tolist() for s in range(0, 400, 20)]
    r = atlas.token_step_test(emb, texts, seed=0)
    assert r["vocab"]["n_texts"] == 20
    assert r["vocab"]["median_ratio"] < 1.0 and r["vocab"]["p_value"] < 0.01
    assert len(r["steps"]) == 20 * 19 == len(r["vocab_steps"])


def test_layer_step_tests_on_fake_capture():
    rng = np.random.default_rng(1)
    lengths = np.array([12] * 15)
    traj = [_walk(rng, 12, 8, 0.1) + rng.normal(scale=3, size=8) for _ in lengths]  # local paths, spread starts
    res = {"lengths": lengths,
           "steps|layers.0.resid_post": np.concatenate([np.linalg.norm(np.diff(t, axis=0), axis=1) for t in traj]),
           "shuffled|layers.0.resid_post": np.concatenate([np.linalg.norm(np.diff(t[rng.permutation(12)], axis=0), axis=1) for t in traj]),
           "sample|layers.0.resid_post": np.concatenate(traj).astype(np.float16)}
    (row,) = atlas.layer_step_tests(res, ["layers.0.resid_post"], seed=0)
    assert row["median_ratio"] < 0.5 and row["cliffs_delta"] < -0.5 and row["share_shorter"] == 1.0


# ------------------------------------------------------------------------------------- unimodality
def test_unimodality_flags_two_clusters_not_a_gaussian():
    rng = np.random.default_rng(0)
    d = 20
    gauss = rng.normal(size=(1500, d))
    shift = np.zeros(d)
    shift[:3] = 6.0
    mix = np.concatenate([rng.normal(size=(750, d)), rng.normal(size=(750, d)) + shift])
    heavy = rng.standard_t(3, size=(1500, d))  # one mode, heavy tails: 2 Gaussians fit better, no valley
    u_g, u_m, u_h = (atlas.unimodality(x, seed=0) for x in (gauss, mix, heavy))
    assert not u_g["bimodal"] and u_g["delta_bic"] < 10
    assert u_m["bimodal"] and u_m["valley_depth"] > 0.5 and u_m["min_weight"] > 0.4
    assert u_m["sarle_bc"] > 5 / 9
    assert not u_h["bimodal"]
    spiked = gauss.copy()
    spiked[:15] *= 30  # 1% massive-activation rows: set aside, the bulk stays one mode
    u_s = atlas.unimodality(spiked, seed=0)
    assert u_s["share_massive"] == pytest.approx(0.01) and not u_s["bimodal"]


# ------------------------------------------------------------------------------------- clusters / overlap
def test_cluster_scores_separate_far_clusters_only():
    rng = np.random.default_rng(0)
    far = np.concatenate([rng.normal(size=(100, 10)), rng.normal(size=(100, 10)) + 8])
    labels = np.array(["a"] * 100 + ["b"] * 100)
    s_far = atlas.cluster_scores(far, labels, seed=0)
    s_same = atlas.cluster_scores(rng.normal(size=(200, 10)), labels, seed=0)
    assert s_far["silhouette"] > 0.5 and s_far["probe_accuracy"] > 0.97
    assert abs(s_same["silhouette"]) < 0.05 and s_same["probe_accuracy"] < 0.7


def test_layer_cluster_scores_math_far_squad_close():
    rng = np.random.default_rng(0)
    tasks = np.array(["web"] * 60 + ["squad"] * 60 + ["mul"] * 30 + ["div"] * 30)
    x = rng.normal(size=(180, 12))
    x[120:] += 6.0  # math far away, squad and web one cloud
    rows = atlas.layer_cluster_scores({"embed": x}, tasks, ["embed"], seed=0)
    assert rows[0]["silhouette_math_vs_nlp"] > 0.4 > abs(rows[0]["silhouette_squad_vs_web"])
    assert rows[0]["probe_math_vs_nlp"] > 0.95


def test_overlap_mixing_index():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(300, 16))
    same = atlas.overlap(a, b, seed=0)
    apart = atlas.overlap(a, b + 10, seed=0)
    assert same["n_each"] == 300 and 0.8 < same["mixing"] <= 1.2 and same["probe_accuracy"] < 0.65
    assert apart["mixing"] < 0.05 and apart["probe_accuracy"] > 0.95


def test_answer_vs_question_geometry():
    rng = np.random.default_rng(0)
    rows, text, pos, roles = [], [], [], []
    for i in range(12):
        q = rng.normal(size=8)
        role = np.array([0] * 10 + [1] * 3 + [0] * 5 + [3] + [2] * 4)
        x = rng.normal(size=(len(role), 8))
        x[role == 2] = q + 0.1 * rng.normal(size=(4, 8))
        x[role == 1] = q + 0.3 * rng.normal(size=(3, 8))  # answers close to the question
        rows.append(x)
        text.append(np.full(len(role), i))
        pos.append(np.arange(len(role)))
        roles.append(role)
    r = atlas.answer_vs_question(np.concatenate(rows), np.concatenate(text), np.concatenate(pos), roles)
    assert r["n_prompts"] == 12 and r["share_answer_closer"] == 1.0 and r["median_ratio"] < 0.5


def test_tsne_is_cached_and_shaped():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(40, 60)), rng.normal(size=(40, 60)) + 5])
    a = atlas.tsne(x, perplexity=10, seed=0, max_iter=250)
    b = atlas.tsne(x, perplexity=10, seed=0, max_iter=250)
    assert a.shape == (80, 2) and np.array_equal(a, b)
    assert len(list(artifacts_dir().glob("tsne-*.json"))) == 1


# ------------------------------------------------------------------------------------- capture
def test_collect_on_tiny_model(tiny):
    model, tok = tiny
    texts = ["The cat sat on the mat and looked at the dog.", "Two plus two is four, said the teacher today.",
             "A short one here."]
    points = atlas.hook_points(model, None)
    assert points[0] == "embed" and points[-1] == "layers.3.resid_post"
    res = atlas.collect(model, tok, texts, points, max_length=32, batch_size=2, token_sample=10, n_paths=2,
                        seed=0, keep_all=["layers.3.resid_post"])
    lengths = res["lengths"]
    n_tok = np.array([len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts])
    assert np.array_equal(lengths, n_tok - 1)
    for p in points:
        assert res[f"mean|{p}"].shape == (3, model.config.hidden_size)
        assert len(res[f"steps|{p}"]) == len(res[f"shuffled|{p}"]) == int((lengths - 1).sum())
        assert res[f"sample|{p}"].shape == (10, model.config.hidden_size)
        assert np.isfinite(res[f"steps|{p}"]).all()
    assert len(res["path|embed"]) == int(lengths[:2].sum()) and set(res["path_text"]) == {0, 1}
    assert len(res["all|layers.3.resid_post"]) == int(lengths.sum()) and res["all_pos"].min() == 1
    # the embed point equals a lookup of the token embeddings
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    emb = model.get_input_embeddings().weight.detach()[ids[1:]]
    got = torch.from_numpy(res["path|embed"][res["path_text"] == 0].astype(np.float32))
    assert torch.allclose(got, emb.float(), atol=1e-2, rtol=1e-2)
    # a sampled row equals the captured row at the same (text, position)
    k = int(np.flatnonzero(res["sample_text"] == 2)[0]) if (res["sample_text"] == 2).any() else 0
    t, q = int(res["sample_text"][k]), int(res["sample_pos"][k])
    sel = (res["all_text"] == t) & (res["all_pos"] == q)
    assert np.array_equal(res["all|layers.3.resid_post"][sel][0], res["sample|layers.3.resid_post"][k])


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
