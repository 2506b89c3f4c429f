"""Placement metrics, nearest neighbours and the trajectory-vs-random-walk test (fixed seeds)."""
import math

import pytest
import torch

import priorlib.metrics.placement as placement
from priorlib.metrics import (compare_steps, hdr_threshold, nearest_neighbours, placement_metrics,
                              random_walk_step_lengths, trajectory_step_lengths)
from priorlib.priors import Reference


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def ref():
    rows = torch.randn(5000, 8, generator=gen()) * torch.linspace(0.5, 2.0, 8)  # [5000, 8]
    return Reference(rows, "gauss", token_ids=torch.arange(5000) + 100)


def _brute(q, r, k, metric="l2"):
    if metric == "l2":
        dist = ((q[:, None, :].double() - r[None].double()) ** 2).sum(-1).sqrt()
    else:
        dist = 1 - torch.nn.functional.cosine_similarity(q[:, None, :].double(), r[None].double(), dim=-1)
    return torch.topk(dist, k, dim=1, largest=False)


@pytest.mark.parametrize("metric", ["l2", "cos"])
def test_nearest_neighbours_match_brute_force_in_chunks(monkeypatch, metric):
    monkeypatch.setattr(placement, "_MAX_BLOCK", 1000)  # force ~ 3 queries per chunk
    q, r = torch.randn(37, 6, generator=gen(1)), torch.randn(300, 6, generator=gen(2))
    dist, idx = nearest_neighbours(q, r, k=3, metric=metric)
    bd, bi = _brute(q, r, 3, metric)
    assert torch.equal(idx, bi)
    torch.testing.assert_close(dist.double(), bd, atol=1e-5, rtol=0)


def test_nearest_neighbours_exclude_self_and_exact_zero():
    r = torch.randn(200, 16, generator=gen(3)) * 10  # large norms: the matmul form alone is off by ~1e-2
    dist, idx = nearest_neighbours(r[:50], r, k=1)
    assert torch.equal(idx[:, 0], torch.arange(50)) and dist.max() < 1e-5
    dist_x, idx_x = nearest_neighbours(r[:50], r, k=2, exclude=torch.arange(50))
    assert (idx_x != torch.arange(50)[:, None]).all() and dist_x.min() > 1.0
    bd, bi = _brute(r[:50], r, 2)
    assert torch.equal(idx_x[:, 0], bi[:, 1])  # the nearest *other* row


def test_prompts_on_reference_rows(ref):
    rows = torch.tensor([3, 10, 4000])
    m = placement_metrics(ref.vectors[rows], ref, decode=lambda i: f"<{i}>", k=2)
    assert m["nn_l2"].max() < 1e-5 and m["nn_cos"].max() < 1e-5
    assert m["nn_ids"][:, 0].tolist() == (rows + 100).tolist()  # token ids, not row indices
    assert m["nn_tokens"][0][0] == "<103>" and len(m["nn_tokens"][0]) == 2
    assert m["knn_l2"].shape == (3, 2) and (m["knn_l2"][:, 1] > 0).all()
    torch.testing.assert_close(m["mahalanobis"], ref.fit().mahalanobis(ref.vectors[rows]))
    assert m["median_nn_l2"] == pytest.approx(float(m["nn_l2"].median()))


def test_percentile_hdr_and_baseline(ref):
    fit = ref.fit()
    far = fit.mean + 50 * torch.diagonal(fit.cov).sqrt()  # 50 std out along every axis
    m = placement_metrics(torch.stack([fit.mean.float(), far.float()]), ref)
    assert m["logdensity_percentile"][0] > 0.999  # the mode beats (almost) every row
    assert m["logdensity_percentile"][1] == 0.0
    assert m["in_hdr"].tolist() == [True, False] and m["share_in_hdr"] == 0.5
    assert m["hdr_radius"] == pytest.approx(math.sqrt(15.507313), rel=1e-6)  # chi2_8 quantile 0.95
    base = m["baseline"]
    # Gaussian reference: 95% of rows inside the 95% region (N = 5000: SE 0.003)
    assert base["share_in_hdr"] == pytest.approx(0.95, abs=0.015)
    assert base["median_mahalanobis"] == pytest.approx(math.sqrt(8 - 2 / 3), rel=0.05)  # chi_8 median ~ 2.7
    assert base["median_nn_l2"] > 0.1  # self excluded
    assert base["n"] == 1024


def test_vocab_shaped_reference_runs_in_chunks():
    rows = torch.randn(20_000, 64, generator=gen(4))
    ref = Reference(rows, "big")
    m = placement_metrics(torch.randn(20, 64, generator=gen(5)), ref, baseline_size=256)
    assert m["nn_l2"].shape == (20,) and m["baseline"]["n"] == 256


def test_trajectory_and_random_walk_lengths():
    seq = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [0.0, 0.0]])
    assert trajectory_step_lengths(seq).tolist() == [5.0, 0.0, 5.0]
    rows = torch.eye(4)  # every distinct pair is sqrt(2) apart
    steps = random_walk_step_lengths(rows, [5, 3, 1], gen())
    assert steps.shape == (4 + 2,)
    assert all(s == 0.0 or abs(s - math.sqrt(2)) < 1e-12 for s in steps.tolist())
    assert torch.equal(steps, random_walk_step_lengths(rows, [5, 3, 1], gen()))


def test_compare_steps_detects_short_steps():
    rows = torch.randn(1000, 16, generator=gen(6))
    walk = torch.cumsum(0.05 * torch.randn(200, 16, generator=gen(7)), 0) + rows[0]  # small local steps
    real = trajectory_step_lengths(walk)
    rand = random_walk_step_lengths(rows, [200], gen(8))
    res = compare_steps(real, rand)
    assert res["p_value"] < 1e-10 and res["cliffs_delta"] < -0.95 and res["median_ratio"] < 0.1
    # Cliff's delta = P(real > random) - P(real < random), by brute force
    diff = real[:, None] - rand[None, :]
    brute = float((diff > 0).double().mean() - (diff < 0).double().mean())
    assert res["cliffs_delta"] == pytest.approx(brute, abs=1e-12)


def test_compare_steps_same_distribution():
    rows = torch.randn(1000, 16, generator=gen(9))
    a = random_walk_step_lengths(rows, [300], gen(10))
    b = random_walk_step_lengths(rows, [300], gen(11))
    res = compare_steps(a, b)
    assert res["p_value"] > 0.01 and abs(res["cliffs_delta"]) < 0.15
    assert res["median_ratio"] == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError):
        compare_steps(torch.zeros(0), b)


def test_hdr_threshold_is_chi_quantile():
    assert hdr_threshold(1, 0.95) == pytest.approx(1.959964, rel=1e-6)
