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

__all__ = ["unimodality", "layer_unimodality", "spread", "concentration", "TIGHT_RATIO", "WIDE_RATIO"]


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


# ------------------------------------------------------------------------ concentration (paper §4.6)

TIGHT_RATIO = 0.5   # spread ratio below which trained vectors are "tightly concentrated"
WIDE_RATIO = 1.0    # spread ratio above which they are at least as spread as the reference
MIN_RUNS = 3        # seeds a concentration verdict needs


def spread(x) -> float:
    """``sqrt(trace(cov(x)))``: the root-mean-square L2 distance of the rows of ``x [n, d]`` to their centroid."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()))


def concentration(trained: Sequence, reference, *, prior: Sequence, bound: float, seed: int = 0,
                  n_boot: int = 1000, confidence: float = 0.95, massive_factor: float = 4.0) -> dict:
    """Are the trained vectors tightly concentrated, relative to the reference activations at their layer?

    ``trained`` and ``prior``: one ``[n_i, d]`` array per run (a deep block's vectors after training and at
    step 0); ``reference``: activation rows ``[m, d]`` of the same layer, rows of massive norm (>
    ``massive_factor`` x median, :func:`priorlib.projection.massive_rows`: first-token / attention-sink
    rows) dropped. ``bound``: the most one vector could move (:func:`priorlib.protocol.movement_bound`).

    Measure: ``ratio = spread(trained vectors of all runs) / spread(reference)`` (:func:`spread`). Interval:
    percentile bootstrap, two-stage for the runs (runs with replacement, then each drawn run's vectors) and
    rows for the reference. Rule, in this order:

    1. *holds by construction* when even the widest the trained set could be, ``(spread(prior) + bound) /
       spread(reference)``, is below :data:`TIGHT_RATIO`: no vector moving at most ``bound`` changes the
       spread by more than ``bound`` (centring shrinks the moves), so the test could not have failed;
    2. *inconclusive* with fewer than :data:`MIN_RUNS` runs;
    3. CI wholly below :data:`TIGHT_RATIO` (0.5) -> agrees; wholly above :data:`WIDE_RATIO` (1) -> contradicts;
       else inconclusive (between 0.5 and 1 is "concentrated, but not tightly").

        rng = np.random.default_rng(0)
        ref = rng.normal(size=(500, 16))
        runs = [0.1 * rng.normal(size=(20, 16)) for _ in range(3)]
        concentration(runs, ref, prior=[rng.normal(size=(20, 16)) for _ in range(3)], bound=10.0)["outcome"]
        # Outcome.AGREES: ratio ~ 0.1, and the prompts could have stayed as wide as the reference
    """
    from ..projection import massive_rows
    from ..protocol import Outcome

    trained = [np.asarray(t, dtype=np.float64) for t in trained]
    prior = [np.asarray(p, dtype=np.float64) for p in prior]
    ref = np.asarray(reference, dtype=np.float64)
    if not trained or ref.ndim != 2 or any(t.ndim != 2 or t.shape[1] != ref.shape[1] for t in trained + prior):
        raise ValueError("trained and prior must be non-empty lists of [n, d] arrays with the reference's d")
    if not bound >= 0:
        raise ValueError(f"bound must be >= 0, got {bound}")
    keep = ~massive_rows(ref, massive_factor)
    ref = ref[keep]
    ref_spread = spread(ref)
    ratio = spread(np.vstack(trained)) / ref_spread
    prior_ratio = spread(np.vstack(prior)) / ref_spread if prior else float("nan")
    widest = (spread(np.vstack(prior)) + bound) / ref_spread if prior else float("inf")
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for i in range(n_boot):
        runs = [trained[j] for j in rng.integers(0, len(trained), len(trained))]
        vec = np.vstack([r[rng.integers(0, len(r), len(r))] for r in runs])
        boot[i] = spread(vec) / spread(ref[rng.integers(0, len(ref), len(ref))])
    lo, hi = (float(q) for q in np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2]))
    span = (f"spread ratio {ratio:.3f}, {confidence:.0%} CI [{lo:.3f}, {hi:.3f}] over {len(trained)} runs "
            f"(prior at step 0: {prior_ratio:.3f}; at most {widest:.3f} reachable with a movement bound of "
            f"{bound:.3g}; {int((~keep).sum())} massive reference rows dropped)")
    if widest < TIGHT_RATIO:
        outcome, why = Outcome.HOLDS_BY_CONSTRUCTION, (f"holds by construction: the prior put them within "
                                                       f"{prior_ratio:.3f} and they could not move far enough "
                                                       f"to reach {TIGHT_RATIO}")
    elif len(trained) < MIN_RUNS:
        outcome, why = Outcome.INCONCLUSIVE, f"needs >= {MIN_RUNS} runs (seeds)"
    elif hi < TIGHT_RATIO:
        outcome, why = Outcome.AGREES, f"tightly concentrated (CI below {TIGHT_RATIO})"
    elif lo > WIDE_RATIO:
        outcome, why = Outcome.CONTRADICTS, f"as spread as the reference or more (CI above {WIDE_RATIO})"
    else:
        outcome, why = Outcome.INCONCLUSIVE, f"the interval reaches [{TIGHT_RATIO}, {WIDE_RATIO}]"
    return {"ratio": ratio, "ci": [lo, hi], "prior_ratio": prior_ratio, "widest_reachable": widest,
            "reference_spread": ref_spread, "n_runs": len(trained), "dropped": int((~keep).sum()),
            "outcome": outcome, "reason": f"{why}: {span}"}
