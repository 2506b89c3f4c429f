"""priorlib.metrics.shape: unimodality of synthetic clouds (one Gaussian, two modes, heavy tails, spikes)."""
import numpy as np
import pytest

from priorlib.metrics.shape import layer_unimodality, unimodality


def test_unimodality_flags_two_clusters_not_a_gaussian():
    rng = np.random.default_rng(0)
    d = 20
    gauss = rng.normal(size=(1500, d))
    shift = np.zeros(d)
    shift[:3] = 6.0
    mix = np.concatenate([rng.normal(size=(750, d)), rng.normal(size=(750, d)) + shift])
    heavy = rng.standard_t(3, size=(1500, d))  # one mode, heavy tails: 2 Gaussians fit better, no valley
    u_g, u_m, u_h = (unimodality(x, seed=0) for x in (gauss, mix, heavy))
    assert not u_g["bimodal"] and u_g["delta_bic"] < 10
    assert u_m["bimodal"] and u_m["valley_depth"] > 0.5 and u_m["min_weight"] > 0.4
    assert u_m["sarle_bc"] > 5 / 9
    assert not u_h["bimodal"]
    spiked = gauss.copy()
    spiked[:15] *= 30  # 1% massive-activation rows: set aside, the bulk stays one mode
    u_s = unimodality(spiked, seed=0)
    assert u_s["share_massive"] == pytest.approx(0.01) and not u_s["bimodal"]


def test_layer_unimodality_one_row_per_point():
    rng = np.random.default_rng(0)
    res = {"sample|embed": rng.normal(size=(300, 6)).astype(np.float16),
           "sample|layers.2.resid_post": rng.normal(size=(300, 6)).astype(np.float16)}
    rows = layer_unimodality(res, ["embed", "layers.2.resid_post"], seed=0)
    assert [r["depth"] for r in rows] == [0, 3] and not any(r["bimodal"] for r in rows)
