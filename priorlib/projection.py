"""2-D pictures of activation clouds: a PCA, and a t-SNE that is computed once per input.

    from priorlib.projection import pca2, tsne
    xy, pca = pca2(rows)                          # fitted on rows; pca.transform(other) for more
    xy = tsne(means, perplexity=30, seed=0)       # cached by a fingerprint of the input
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["pca2", "tsne"]


def pca2(x: np.ndarray, n_components: int = 2, fit_on: np.ndarray | None = None, seed: int = 0):
    """``(coords [n, k], pca)``: a PCA fitted on ``fit_on`` (default ``x``), applied to ``x`` (float64)."""
    from sklearn.decomposition import PCA

    fit = np.asarray(fit_on if fit_on is not None else x, dtype=np.float64)
    pca = PCA(n_components=n_components, random_state=seed).fit(fit)
    return pca.transform(np.asarray(x, dtype=np.float64)), pca


def tsne(x: np.ndarray, *, perplexity: float, seed: int, max_iter: int = 1000, n_pca: int = 50,
         name: str = "tsne", params: dict | None = None) -> np.ndarray:
    """``[n, 2]``: t-SNE (sklearn, Barnes-Hut, PCA init) after a PCA to ``n_pca`` dims, through
    :func:`priorlib.cache.cached` (keyed by ``params``, a fingerprint of ``x`` and the settings).

    The perplexity is capped at ``(n - 1) / 3`` (sklearn's requirement) for small inputs.
    """
    from sklearn.manifold import TSNE

    from .cache import cached, fingerprint

    x = np.asarray(x, dtype=np.float32)
    perp = float(min(perplexity, max(2.0, (len(x) - 1) / 3.0)))
    key = dict(params or {}, data=fingerprint(x), perplexity=perp, seed=seed, max_iter=max_iter, n_pca=n_pca)

    def compute():
        t0 = time.perf_counter()
        z = x
        if x.shape[1] > n_pca and len(x) > n_pca:
            z, _ = pca2(x, n_pca, seed=seed)
        emb = TSNE(2, perplexity=perp, init="pca", random_state=seed, max_iter=max_iter,
                   learning_rate="auto").fit_transform(np.asarray(z, dtype=np.float32))
        return {"xy": emb.astype(np.float32), "seconds": np.float64(time.perf_counter() - t0)}

    return cached(name, key, compute)["xy"]
