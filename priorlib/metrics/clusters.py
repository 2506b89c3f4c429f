"""How well groups of vectors separate: the one cluster-separation measure of priorlib.

    from priorlib.metrics.clusters import separation, two_cloud_separation
    s = separation(x, labels)                 # {"silhouette", "probe_accuracy", "chance", "n", "folds"}
    t = two_cloud_separation(web_rows, squad_rows)

**The protocol** (:func:`separation`; every other function here calls it):

1. features are z-scored per dimension over the rows compared (:func:`standardise`); a few residual
   dimensions of an LM are orders of magnitude larger than the rest and would otherwise decide every
   distance. The standardisation ignores the labels, so sharing it across the folds below leaks nothing;
2. the **silhouette** coefficient of the labels on those features, Euclidean distance, in [-1, 1]
   (near 0: overlapping groups; Kaufman & Rousseeuw: > 0.25 weak, > 0.5 reasonable structure);
3. the **probe accuracy**: an L2-regularised logistic regression (``C = 0.1``) on the same features,
   scored by stratified ``folds``-fold cross-validation (shuffled with ``seed``), mean accuracy over the
   folds; ``chance`` is the majority-class share, what a probe that ignores the features scores.

:func:`two_cloud_separation` draws equally many rows of two clouds first (chance 0.5);
:func:`domain_separation` scores MATH against the NLP domains and SQuAD against web text;
:func:`overlap` adds a k-nearest-neighbour mixing index to the probe.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["PROBE_C", "FOLDS", "standardise", "separation", "two_cloud_separation", "domain_separation", "overlap"]

PROBE_C = 0.1  # inverse L2 strength of the logistic-regression probe
FOLDS = 5


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def standardise(x) -> np.ndarray:
    """``(x - mean) / sd`` per column, float64; a constant column becomes 0."""
    x = _numpy(x)
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)


def separation(x, labels, *, folds: int = FOLDS, seed: int = 0) -> dict:
    """Silhouette and cross-validated linear-probe accuracy of ``labels`` on ``x [n, d]`` (module docstring).

    ``labels`` is any array of class names (two or more classes). Fewer rows in the smallest class than
    ``folds`` lower the number of folds to that count (at least 2).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    z = standardise(x)
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise ValueError(f"separation needs two or more classes of at least 2 rows each, got {dict(zip(classes, counts))}")
    k = int(min(folds, counts.min()))
    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    probe = cross_val_score(LogisticRegression(C=PROBE_C, max_iter=2000), z, y, cv=cv)
    return {"silhouette": float(silhouette_score(z, y, metric="euclidean")), "probe_accuracy": float(probe.mean()),
            "chance": float(counts.max() / counts.sum()), "n": int(len(y)), "folds": k}


def two_cloud_separation(a, b, *, n: int = 2000, seed: int = 0, folds: int = FOLDS) -> dict:
    """:func:`separation` of the rows of ``a`` against those of ``b``, ``min(n, len(a), len(b))`` of each
    (drawn with ``seed``), so chance is 0.5: 0.5 = one cloud, 1.0 = disjoint clouds."""
    rng = np.random.default_rng(seed)
    a, b = _numpy(a), _numpy(b)
    k = min(n, len(a), len(b))
    x = np.concatenate([a[rng.choice(len(a), k, replace=False)], b[rng.choice(len(b), k, replace=False)]])
    return {**separation(x, np.r_[np.zeros(k, int), np.ones(k, int)], folds=folds, seed=seed), "n_each": k}


def domain_separation(x, domains, *, nlp: Sequence[str] = ("web", "squad"), seed: int = 0,
                      folds: int = FOLDS) -> dict:
    """The task-cluster claim on one layer: MATH (every domain not in ``nlp``) against the NLP domains
    over all rows, and SQuAD against web text over those two only.

    Returns ``silhouette_`` / ``probe_`` / ``chance_`` ``math_vs_nlp`` and ``squad_vs_web``.
    """
    x, domains = _numpy(x), np.asarray(domains)
    is_nlp = np.isin(domains, list(nlp))
    two = np.isin(domains, ["web", "squad"])
    out = {}
    for pair, rows, y in (("math_vs_nlp", slice(None), np.where(is_nlp, "nlp", "math")),
                          ("squad_vs_web", two, domains)):
        s = separation(x[rows], y[rows], folds=folds, seed=seed)
        out.update({f"silhouette_{pair}": s["silhouette"], f"probe_{pair}": s["probe_accuracy"],
                    f"chance_{pair}": s["chance"]})
    return out


def overlap(a, b, *, k: int = 10, n_pca: int = 50, seed: int = 0) -> dict:
    """How much two token clouds ``a [n_a, d]``, ``b [n_b, d]`` overlap.

    Both are cut to the same size ``m`` (seeded) and projected on the top ``n_pca`` principal components
    of the pooled rows; each row's ``k`` nearest neighbours are looked up there. ``mixing = (share of
    neighbours from the other cloud) / 0.5``: 1 for two samples of one distribution, 0 for disjoint
    clouds. ``probe_accuracy``: :func:`separation` of the same ``2 m`` rows (0.5 = indistinguishable).
    """
    from sklearn.neighbors import NearestNeighbors

    from ..projection import pca2

    rng = np.random.default_rng(seed)
    m = min(len(a), len(b))
    a = np.asarray(a, dtype=np.float32)[rng.choice(len(a), m, replace=False)]
    b = np.asarray(b, dtype=np.float32)[rng.choice(len(b), m, replace=False)]
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(m, int), np.ones(m, int)]
    z, _ = pca2(x, min(n_pca, x.shape[1], len(x) - 1), seed=seed)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)
    other = (y[idx[:, 1:]] != y[:, None]).mean()
    return {"n_each": m, "k": k, "mixing": float(other / 0.5), "probe_accuracy": separation(x, y, seed=seed)["probe_accuracy"]}
