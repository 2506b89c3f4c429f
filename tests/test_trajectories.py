"""priorlib.metrics.trajectories: step lengths against random walks, on synthetic paths with fixed seeds."""
import numpy as np
import pytest
import torch

from priorlib.metrics.trajectories import layer_step_tests, per_text, step_test, token_step_test


def _walk(rng, n, d, step):
    return np.cumsum(rng.normal(scale=step, size=(n, d)), axis=0)


def test_step_test_detects_shorter_steps():
    rng = np.random.default_rng(0)
    real = [np.abs(rng.normal(0.5, 0.1, 40)) for _ in range(30)]
    rand = [np.abs(rng.normal(1.0, 0.1, 40)) for _ in range(30)]
    r = step_test(real, rand)
    assert r["median_ratio"] < 0.6 and r["cliffs_delta"] < -0.9 and r["p_value"] < 1e-10
    assert r["share_shorter"] == 1.0 and r["p_value_per_text"] < 1e-5
    same = step_test(real, [a[rng.permutation(len(a))] for a in real])
    assert abs(same["cliffs_delta"]) < 1e-9 and same["median_ratio"] == pytest.approx(1.0)


def test_token_step_test_smooth_vs_jumpy():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(500, 16, generator=g)
    # "sentences" that walk through neighbouring rows: emb sorted along a 1-D curve
    order = torch.argsort(emb[:, 0])
    texts = [order[s:s + 20].tolist() for s in range(0, 400, 20)]
    r = token_step_test(emb, texts, seed=0)
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
    (row,) = layer_step_tests(res, ["layers.0.resid_post"], seed=0)
    assert row["median_ratio"] < 0.5 and row["cliffs_delta"] < -0.5 and row["share_shorter"] == 1.0


def test_per_text_splits_by_length():
    parts = per_text(np.arange(7), np.array([3, 2, 4]))
    assert [p.tolist() for p in parts] == [[0, 1], [2], [3, 4, 5, 6]]
