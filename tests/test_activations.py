"""priorlib.activations: per-text means (one implementation), capture, and the atlas summaries."""
import numpy as np
import pytest
import torch

from priorlib.activations import TextMeans, capture, cached_summaries, summaries, text_means
from priorlib.cache import artifacts_dir
from priorlib.hooks import hook_points


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("PRIORLIB_NO_CACHE", raising=False)


def test_text_means_windows_on_known_activations():
    acts = {"p": torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1)}  # text 0: 0 1 2 3, text 1: 4 5 6 7
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    full, skip, short = TextMeans(3), TextMeans(3, start=1), TextMeans(3, start=1, stop=3)
    for m in (full, skip, short):
        m.add(acts, mask, [2, 0])  # rows are texts 2 and 0
    assert full["p"][2].item() == 1.5 and skip["p"][2].item() == 2.0 and short["p"][2].item() == 1.5
    # a one-token text has nothing in the window: it keeps the mean of all its tokens
    assert full["p"][0].item() == skip["p"][0].item() == short["p"][0].item() == 4.0
    assert torch.isnan(full["p"][1]).all()  # never seen
    with pytest.raises(ValueError):
        TextMeans(3, start=2, stop=2)


def test_text_means_equal_the_mean_of_captured_tokens(tiny):
    model, tok = tiny
    texts = ["The cat sat on the mat.", "Two plus two is four, said the teacher.", "Hi there."]
    point = "layers.1.resid_post"
    traj = capture(model, tok, texts, [point], reduce="trajectory", dtype=None, progress=False)[point]
    skip = text_means(model, tok, texts, [point], start=1, dtype=None, batch_size=2)[point]
    full = capture(model, tok, texts, [point], reduce="mean", dtype=None, progress=False)[point]
    for i, t in enumerate(traj):
        assert torch.allclose(full[i], t.float().mean(0), atol=1e-2)
        assert torch.allclose(skip[i], t.float()[1:].mean(0), atol=1e-2)


def test_summaries_on_tiny_model(tiny):
    model, tok = tiny
    texts = ["The cat sat on the mat and looked at the dog.", "Two plus two is four, said the teacher today.",
             "A short one here."]
    points = hook_points(model, None)
    assert points[0] == "embed" and points[-1] == "layers.3.resid_post"
    res = summaries(model, tok, texts, points, max_length=32, batch_size=2, token_sample=10, n_paths=2,
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


def test_summaries_means_are_text_means_and_cached(tiny):
    model, tok = tiny
    texts = ["The cat sat on the mat and looked at the dog.", "Two plus two is four, said the teacher today."]
    points = ["layers.1.resid_post"]
    kw = dict(max_length=32, batch_size=2, token_sample=5, n_paths=0, seed=0)
    res = cached_summaries("unit-summaries", {"v": 1}, model, tok, texts, points, **kw)
    m = text_means(model, tok, texts, points, start=1, max_length=32, batch_size=2, bucket=32)[points[0]]
    assert np.allclose(res["mean|layers.1.resid_post"], m.numpy(), atol=1e-6)
    again = cached_summaries("unit-summaries", {"v": 1}, model, tok, texts, points, **kw)
    assert np.array_equal(again["steps|layers.1.resid_post"], res["steps|layers.1.resid_post"])
    assert len(list(artifacts_dir().glob("unit-summaries-*.json"))) == 1
    with pytest.raises(ValueError, match="at least 3"):
        summaries(model, tok, ["Hi"], points, **kw)
