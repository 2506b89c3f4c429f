"""Is an activation cloud one mode or two? Mixture fits, the density valley between them, Sarle's coefficient.

    from priorlib.metrics.shape import unimodality
    u = unimodality(rows, seed=0)          # u["bimodal"], u["delta_bic"], u["valley_depth"], ...
    table = layer_unimodality(summaries, points, seed=0)   # per point of priorlib.activations.summaries
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..hooks import depth_of
from ..projection import pca2

__all__ = ["unimodality", "layer_unimodality"]


def _sarle_bc(v: np.ndarray) -> float:
    """Sarle's bimodality coefficient ``(g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3)))``; > 5/9 hints at two modes."""
    from scipy.stats import kurtosis, skew

    n = len(v)
    g, k = skew(v, bias=False), kurtosis(v, bias=False)
    return float((g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def unimodality(x: np.ndarray, *, n_components: int = 2, seed: int = 0, bic_margin: float = 10.0,
                min_weight: float = 0.05, min_valley: float = 0.1, massive_factor: float = 4.0) -> dict:
    """Is the cloud ``x [n, d]`` one mode or two, on its first ``n_components`` principal components?

    Rows whose norm exceeds ``massive_factor`` times the median norm (massive-activation tokens: a
    handful of tokens that carry norms of ten times the rest in mid and upper layers) are set aside
    first and reported as ``share_massive``; otherwise two or three such rows take the first principal
    components and a mixture component to themselves and the test says nothing about the bulk.
    Fits Gaussian mixtures with 1 and 2 components (full covariance) to the standardised projection.
    ``delta_bic = BIC_1 - BIC_2`` (> 0: two components fit better). A better 2-component fit alone is
    not two modes (a heavy-tailed single mode is also fitted better by two Gaussians), so the fitted
    2-component density is evaluated on the segment between its means: ``valley_depth = 1 -
    min(segment) / min(density at the two means)`` is 0 when the density has no dip between them.
    ``bimodal`` = ``delta_bic > bic_margin`` and ``valley_depth > min_valley`` and the smaller
    component holds at least ``min_weight`` of the points. Also reports Sarle's coefficient on PC1.
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    massive = norms > massive_factor * np.median(norms)
    x = x[~massive]
    z, pca = pca2(x, n_components, seed=seed)
    z = (z - z.mean(0)) / z.std(0)
    g1 = GaussianMixture(1, covariance_type="full", random_state=seed).fit(z)
    g2 = GaussianMixture(2, covariance_type="full", random_state=seed, n_init=2).fit(z)
    delta = float(g1.bic(z) - g2.bic(z))
    m0, m1 = g2.means_
    seg = m0[None, :] + np.linspace(0, 1, 201)[:, None] * (m1 - m0)[None, :]
    dens = np.exp(g2.score_samples(seg))
    valley = float(1.0 - dens.min() / min(dens[0], dens[-1])) if min(dens[0], dens[-1]) > 0 else 0.0
    w_min = float(g2.weights_.min())
    return {"delta_bic": delta, "delta_bic_per_point": delta / len(z), "valley_depth": valley,
            "min_weight": w_min, "sarle_bc": _sarle_bc(z[:, 0]), "share_massive": float(massive.mean()),
            "explained_variance": float(pca.explained_variance_ratio_.sum()),
            "bimodal": bool(delta > bic_margin and valley > min_valley and w_min >= min_weight)}


def layer_unimodality(res: dict, points: Sequence[str], seed: int, **kw) -> list[dict]:
    """:func:`unimodality` of each point's token sample (``sample|<point>``), one row per point."""
    return [{"point": p, "depth": depth_of(p), **unimodality(res[f"sample|{p}"].astype(np.float32), seed=seed, **kw)}
            for p in points]
