"""2-D pictures of activation clouds: a PCA, and a t-SNE that is computed once per input.

    from priorlib.projection import pca2, tsne
    xy, pca = pca2(rows)                          # fitted on rows; pca.transform(other) for more
    xy = tsne(means, perplexity=30, seed=0)       # cached by a fingerprint of the input
    proj = JointWhitenedPCA(tokens, prompts)      # token embeddings + prompts: far points drawn far
    proj = ActivationProjection(acts, first_token=pos == 0)   # activations: massive rows out, z-scored

Two projections exist because a plain PCA of the token cloud misleads. (1) A point far from the cloud
by Mahalanobis distance can lie along a low-variance direction that the two leading components do not
see, so it is drawn *inside* the cloud. :class:`JointWhitenedPCA` whitens by the token covariance (so
Euclidean distance is Mahalanobis distance) and fits its PCA on tokens and points together, the two
groups weighted equally: the directions in which the points leave the cloud are the widest ones.
(2) Activation clouds have a few massive dimensions on a few rows (the first token / attention sink;
Sun et al. 2024, Timkey & van Schijndel 2021) that take 90%+ of the variance on PC1.
:class:`ActivationProjection` drops those rows and standardises every dimension before its PCA.
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["pca2", "tsne", "JointWhitenedPCA", "ActivationProjection", "massive_rows"]


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


class JointWhitenedPCA:
    """A 2-D map of ``points`` over a ``cloud`` whose geometry keeps far points (by Mahalanobis) far.

    ``z = W (x - mean_cloud)`` with ``W = Sigma^{-1/2}`` of the cloud (eigenvalues floored at
    ``floor * max``), so ``|z|`` is the Mahalanobis distance; then a PCA of ``z`` with the scatter
    ``S = 0.5 E_cloud[(z - m)(z - m)^T] + 0.5 E_points[(z - m)(z - m)^T]``, ``m`` the equal-weight mean.
    ``explained`` is each axis's share of that joint (whitened) variance; units: token-cloud sd.
    """

    kind = "joint whitened PCA"

    def __init__(self, cloud, points, n_components: int = 2, floor: float = 1e-6):
        c = np.asarray(cloud, dtype=np.float64)
        p = np.asarray(points, dtype=np.float64).reshape(-1, c.shape[1])
        self.mean = c.mean(0)
        ev, vec = np.linalg.eigh(np.cov(c, rowvar=False).reshape(c.shape[1], c.shape[1]))
        ev = np.maximum(ev, floor * max(float(ev.max()), 1e-300))
        self.whiten = vec / np.sqrt(ev)  # [d, d]: z = (x - mean) @ whiten
        zc, zp = (c - self.mean) @ self.whiten, (p - self.mean) @ self.whiten
        self.centre = 0.5 * zc.mean(0) + (0.5 * zp.mean(0) if len(zp) else 0.5 * zc.mean(0))
        dc, dp = zc - self.centre, zp - self.centre
        scatter = 0.5 * dc.T @ dc / len(dc) + (0.5 * dp.T @ dp / len(dp) if len(dp) else 0.5 * dc.T @ dc / len(dc))
        w, u = np.linalg.eigh(scatter)
        order = np.argsort(w)[::-1][:n_components]
        self.components = u[:, order].T  # [k, d]
        self.explained = w[order] / float(w.sum())

    def transform(self, x) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64).reshape(-1, len(self.mean)) - self.mean) @ self.whiten
        return (z - self.centre) @ self.components.T

    def label(self, k: int) -> str:
        return f"joint PC{k + 1} ({100 * self.explained[k]:.1f}% of variance, token-cloud sd)"


def massive_rows(x, factor: float = 4.0) -> np.ndarray:
    """``[n]`` bool: rows whose L2 norm exceeds ``factor`` times the median row norm (massive activations)."""
    norms = np.linalg.norm(np.asarray(x, dtype=np.float64), axis=1)
    return norms > factor * np.median(norms)


class ActivationProjection:
    """The one PCA of activation rows used by every activation picture.

    1. drop the first-token rows (``first_token``, a bool mask, e.g. ``positions == 0``) and every row
       whose norm exceeds ``factor`` x the median norm (:func:`massive_rows`): the attention-sink rows
       that carry massive activations;
    2. standardise each dimension with the kept rows' mean and sd (a rogue dimension weighs as any other);
    3. PCA to ``n_components``. :meth:`transform` applies the same standardisation to other rows.
    """

    kind = "PCA of standardised activations"

    def __init__(self, x, *, first_token=None, factor: float = 4.0, n_components: int = 2, seed: int = 0):
        from sklearn.decomposition import PCA

        x = np.asarray(x, dtype=np.float64)
        drop = massive_rows(x, factor)
        if first_token is not None:
            drop |= np.asarray(first_token, dtype=bool)
        if drop.all():
            drop[:] = False
        self.dropped, self.factor = drop, factor
        kept = x[~drop]
        self.mean, sd = kept.mean(0), kept.std(0)
        self.sd = np.where(sd > 0, sd, 1.0)
        self.pca = PCA(n_components=n_components, random_state=seed).fit((kept - self.mean) / self.sd)
        self.explained = self.pca.explained_variance_ratio_
        self.n_features_in_ = x.shape[1]

    def transform(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.n_features_in_)
        return self.pca.transform((x - self.mean) / self.sd)

    def label(self, k: int) -> str:
        return f"PC{k + 1} ({100 * self.explained[k]:.1f}% of variance, z-units)"

    @property
    def description(self) -> str:
        return (f"{int(self.dropped.sum())} first-token / massive-activation rows (norm > {self.factor:g}x median) dropped and "
                f"each dimension standardised before the PCA (massive activations, Sun et al. 2024)")
