"""priorlib.metrics.clusters: the one cluster-separation measure, on synthetic clusters with known answers."""
import numpy as np
import pytest
import torch

from priorlib.metrics.clusters import domain_separation, overlap, separation, standardise, two_cloud_separation


def test_standardise_zero_mean_unit_sd_and_constant_columns():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(5, 3, 100), np.full(100, 7.0), rng.normal(-2, 0.1, 100)]
    z = standardise(x)
    assert np.allclose(z.mean(0), 0) and np.allclose(z.std(0), [1, 0, 1]) and (z[:, 1] == 0).all()
    assert np.allclose(standardise(torch.from_numpy(x).float()), z, atol=1e-5)  # tensors too


def test_well_separated_clusters_score_high():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(100, 10)), rng.normal(size=(100, 10)) + 8])
    s = separation(x, np.array(["a"] * 100 + ["b"] * 100), seed=0)
    assert s["silhouette"] > 0.5 and s["probe_accuracy"] > 0.97
    assert s["chance"] == 0.5 and s["n"] == 200 and s["folds"] == 5


def test_one_cloud_split_at_random_scores_chance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10))
    s = separation(x, rng.permutation(np.array(["a"] * 100 + ["b"] * 100)), seed=0)
    assert abs(s["silhouette"]) < 0.05 and abs(s["probe_accuracy"] - 0.5) < 0.12
    # unbalanced labels: chance is the majority share, and a probe on noise does not beat it
    y = rng.permutation(np.array([0] * 150 + [1] * 50))
    u = separation(x, y, seed=0)
    assert u["chance"] == 0.75 and u["probe_accuracy"] <= 0.78


def test_a_huge_dimension_does_not_hide_the_clusters():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(80, 8)), rng.normal(size=(80, 8)) + 3])
    x = np.c_[x, rng.normal(scale=1e4, size=160)]  # a "massive" residual dimension, pure noise
    s = separation(x, np.r_[np.zeros(80), np.ones(80)], seed=0)
    assert s["silhouette"] > 0.3 and s["probe_accuracy"] > 0.95


def test_folds_shrink_to_the_smallest_class_and_bad_labels_fail():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 4))
    assert separation(x, np.r_[np.zeros(20), np.ones(3)], seed=0)["folds"] == 3
    with pytest.raises(ValueError, match="two or more classes"):
        separation(x, np.zeros(23), seed=0)
    with pytest.raises(ValueError, match="two or more classes"):
        separation(x, np.r_[np.zeros(22), np.ones(1)], seed=0)


def test_same_seed_same_numbers():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 5)), rng.integers(0, 2, 60)
    assert separation(x, y, seed=4) == separation(x, y, seed=4)


def test_two_cloud_separation_balances_and_tells_apart():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 8, generator=g)
    far = two_cloud_separation(a, a + 10.0, n=400)
    assert far["probe_accuracy"] > 0.95 and far["silhouette"] > 0.5 and far["n_each"] == 400
    same = two_cloud_separation(a[:200], a[200:], n=200)
    assert same["probe_accuracy"] < 0.65 and abs(same["silhouette"]) < 0.05 and same["chance"] == 0.5
    assert two_cloud_separation(a[:300], a[300:] + 10.0)["n_each"] == 100  # equally many of each


def test_domain_separation_math_far_squad_close():
    rng = np.random.default_rng(0)
    tasks = np.array(["web"] * 60 + ["squad"] * 60 + ["mul"] * 30 + ["div"] * 30)
    x = rng.normal(size=(180, 12))
    x[120:] += 6.0  # math far away, squad and web one cloud
    r = domain_separation(x, tasks, seed=0)
    assert r["silhouette_math_vs_nlp"] > 0.4 > abs(r["silhouette_squad_vs_web"])
    assert r["probe_math_vs_nlp"] > 0.95 and abs(r["probe_squad_vs_web"] - 0.5) < 0.15
    assert r["chance_math_vs_nlp"] == pytest.approx(2 / 3) and r["chance_squad_vs_web"] == 0.5


def test_overlap_mixing_index():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(300, 16))
    same = overlap(a, b, seed=0)
    apart = overlap(a, b + 10, seed=0)
    assert same["n_each"] == 300 and 0.8 < same["mixing"] <= 1.2 and same["probe_accuracy"] < 0.65
    assert apart["mixing"] < 0.05 and apart["probe_accuracy"] > 0.95
