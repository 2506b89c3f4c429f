"""Streaming mean and full covariance (float64), and the Gaussian they define.

``StreamingGaussian`` keeps, for the rows seen so far, the count ``n``, the mean ``mu`` and the
centred moments

    M2 = sum_k y_k y_k^T            # [d, d]   y_k = x_k - mu
    T3 = sum_k |y_k|^2 y_k          # [d]
    Q4 = sum_k |y_k|^4              # scalar

Batches are folded in with Chan et al.'s parallel update: each part's centred moments are moved to
the combined mean ``mu = (n_a mu_a + n_b mu_b) / n`` (shift ``e = mu - mu_a``) and added,

    M2' = M2 + n e e^T
    T3' = T3 - tr(M2) e - 2 M2 e - n |e|^2 e
    Q4' = Q4 - 4 e.T3 + 4 e^T M2 e + 2 |e|^2 tr(M2) + n |e|^4

which for M2 is exactly ``M2_a + M2_b + n_a n_b / n (mu_b - mu_a)(mu_b - mu_a)^T``. ``T3`` and ``Q4``
are only there for the Ledoit-Wolf shrinkage intensity, which needs the fourth moments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

__all__ = ["StreamingGaussian", "Gaussian", "ledoit_wolf_shrinkage"]

_F64 = torch.float64


def _recentre(n: int, m2: Tensor, t3: Tensor, q4: Tensor, e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Move centred moments of ``n`` rows from their mean ``mu`` to ``mu + e`` (formulas in the module doc)."""
    tr = torch.trace(m2)
    m2e = m2 @ e  # [d]
    ee = e @ e
    m2_new = m2 + n * torch.outer(e, e)
    t3_new = t3 - tr * e - 2 * m2e - n * ee * e
    q4_new = q4 - 4 * (e @ t3) + 4 * (e @ m2e) + 2 * ee * tr + n * ee * ee
    return m2_new, t3_new, q4_new


def ledoit_wolf_shrinkage(n: int, m2: Tensor, q4: Tensor) -> float:
    """Ledoit & Wolf (2004) shrinkage intensity towards ``mu_I I`` from centred moments.

    With the ML covariance ``S = M2 / n``, ``mu_I = tr(S) / d`` and ``Q4 = sum_k |y_k|^4``:

        delta = |S - mu_I I|_F^2 / d
        beta  = (Q4 / n - |S|_F^2) / (d n)          # = (1/n^2) sum_k |y_k y_k^T - S|_F^2 / d
        shrinkage = min(beta, delta) / delta

    (the same estimator as ``sklearn.covariance.ledoit_wolf_shrinkage``).
    """
    d = m2.shape[0]
    s = m2 / n
    mu_i = torch.trace(s) / d
    delta = ((s - mu_i * torch.eye(d, dtype=s.dtype)) ** 2).sum() / d
    beta = (q4 / n - (s**2).sum()) / (d * n)
    if float(delta) == 0.0:
        return 0.0
    return float(torch.clamp(beta, min=0.0).minimum(delta) / delta)


class StreamingGaussian:
    """Streaming mean / full covariance in float64 (Chan's parallel update, see the module doc)."""

    def __init__(self, dim: int | None = None):
        self._n = 0
        self._mean = self._m2 = self._t3 = self._q4 = None
        if dim is not None:
            self._alloc(dim)

    def _alloc(self, d: int) -> None:
        self._mean = torch.zeros(d, dtype=_F64)
        self._m2 = torch.zeros(d, d, dtype=_F64)
        self._t3 = torch.zeros(d, dtype=_F64)
        self._q4 = torch.zeros((), dtype=_F64)

    # ------------------------------------------------------------------ updates
    def update(self, x: Tensor) -> "StreamingGaussian":
        """Fold in a batch ``x: [..., d]`` (leading dims are flattened)."""
        x = x.detach().reshape(-1, x.shape[-1]).to("cpu", _F64)  # [b, d]
        if x.shape[0] == 0:
            return self
        mean = x.mean(0)  # [d]
        y = x - mean  # [b, d]
        sq = (y * y).sum(1)  # [b]
        batch = StreamingGaussian()
        batch._n, batch._mean = x.shape[0], mean
        batch._m2, batch._t3, batch._q4 = y.T @ y, sq @ y, (sq * sq).sum()
        return self.merge(batch)

    def merge(self, other: "StreamingGaussian") -> "StreamingGaussian":
        """Fold in another accumulator (in place); returns ``self``."""
        if other._n == 0:
            return self
        if self._n == 0:
            self._n = other._n
            self._mean, self._m2 = other._mean.clone(), other._m2.clone()
            self._t3, self._q4 = other._t3.clone(), other._q4.clone()
            return self
        if other._mean.shape != self._mean.shape:
            raise ValueError(f"cannot merge dim {other._mean.shape[0]} into dim {self._mean.shape[0]}")
        n = self._n + other._n
        mean = self._mean + (other._mean - self._mean) * (other._n / n)
        a = _recentre(self._n, self._m2, self._t3, self._q4, mean - self._mean)
        b = _recentre(other._n, other._m2, other._t3, other._q4, mean - other._mean)
        self._n, self._mean = n, mean
        self._m2, self._t3, self._q4 = a[0] + b[0], a[1] + b[1], a[2] + b[2]
        return self

    # ------------------------------------------------------------------ results
    @property
    def n(self) -> int:
        return self._n

    @property
    def dim(self) -> int | None:
        return None if self._mean is None else self._mean.shape[0]

    @property
    def mean(self) -> Tensor:
        self._need(1)
        return self._mean.clone()  # [d]

    @property
    def cov(self) -> Tensor:
        """Unbiased covariance ``M2 / (n - 1)``."""
        self._need(2)
        return self._m2 / (self._n - 1)  # [d, d]

    def shrinkage_intensity(self) -> float:
        """Ledoit-Wolf shrinkage intensity of the rows seen so far."""
        self._need(2)
        return ledoit_wolf_shrinkage(self._n, self._m2, self._q4)

    def fit(self, shrinkage: str | float = "none") -> "Gaussian":
        """Gaussian of the rows seen so far.

        ``"none"``: unbiased covariance ``S``. ``float s`` in [0, 1]: ``(1 - s) S + s tr(S)/d I``.
        ``"ledoit-wolf"``: the Ledoit-Wolf estimate ``(1 - s*) S_ml + s* tr(S_ml)/d I`` with the ML
        covariance ``S_ml = M2 / n`` and ``s*`` from ``ledoit_wolf_shrinkage`` (as sklearn does).
        """
        self._need(2)
        d = self._mean.shape[0]
        if shrinkage == "none":
            return Gaussian(self.mean, self.cov)
        if shrinkage == "ledoit-wolf":
            s, cov = self.shrinkage_intensity(), self._m2 / self._n
        elif isinstance(shrinkage, (int, float)) and not isinstance(shrinkage, bool):
            s, cov = float(shrinkage), self.cov
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"shrinkage must be in [0, 1], got {s}")
        else:
            raise ValueError(f"shrinkage must be 'none', 'ledoit-wolf' or a float in [0, 1], got {shrinkage!r}")
        target = torch.trace(cov) / d * torch.eye(d, dtype=_F64)
        return Gaussian(self.mean, (1 - s) * cov + s * target)

    def _need(self, k: int) -> None:
        if self._n < k:
            raise ValueError(f"StreamingGaussian needs at least {k} rows, has {self._n}")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Tensor]:
        """Tensors only, so ``safetensors.torch.save_file`` can store it."""
        self._need(1)
        return {"n": torch.tensor([self._n], dtype=torch.int64), "mean": self._mean.clone(),
                "m2": self._m2.clone(), "t3": self._t3.clone(), "q4": self._q4.reshape(1).clone()}

    @classmethod
    def from_dict(cls, state: dict[str, Tensor]) -> "StreamingGaussian":
        out = cls()
        out._n = int(state["n"].reshape(-1)[0])
        out._mean, out._m2 = state["mean"].to(_F64).clone(), state["m2"].to(_F64).clone()
        out._t3, out._q4 = state["t3"].to(_F64).clone(), state["q4"].to(_F64).reshape(()).clone()
        return out

    def __repr__(self) -> str:
        return f"StreamingGaussian(n={self._n}, dim={self.dim})"


@dataclass(eq=False)
class Gaussian:
    """``N(mean, cov)`` in float64; ``mean: [d]``, ``cov: [d, d]``."""

    mean: Tensor
    cov: Tensor

    def __post_init__(self):
        self.mean = torch.as_tensor(self.mean).to(_F64)
        self.cov = torch.as_tensor(self.cov).to(_F64)
        d = self.mean.shape[0]
        if self.mean.ndim != 1 or self.cov.shape != (d, d):
            raise ValueError(f"Gaussian wants mean [d] and cov [d, d], got {tuple(self.mean.shape)} "
                             f"and {tuple(self.cov.shape)}")

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @cached_property
    def cholesky(self) -> Tensor:
        """Lower ``L`` with ``L L^T = cov``; adds jitter ``eps * mean(diag)`` (eps = 1e-10 ... 1e-2) if needed."""
        sym = (self.cov + self.cov.T) / 2
        L, info = torch.linalg.cholesky_ex(sym)
        scale = float(torch.diagonal(sym).abs().mean()) or 1.0
        eps = 1e-10
        while int(info) != 0:
            if eps > 1e-2:
                raise ValueError("covariance is not positive definite even with jitter 1e-2 * mean(diag)")
            L, info = torch.linalg.cholesky_ex(sym + eps * scale * torch.eye(self.dim, dtype=_F64))
            eps *= 10
        return L  # [d, d]

    @cached_property
    def precision(self) -> Tensor:
        """``cov^{-1}`` via the Cholesky factor."""
        return torch.cholesky_inverse(self.cholesky)  # [d, d]

    @cached_property
    def logdet(self) -> float:
        return float(2 * torch.log(torch.diagonal(self.cholesky)).sum())

    def sample(self, n: int, generator: torch.Generator | None = None, scale: float = 1.0) -> Tensor:
        """``x = mean + scale * L z``, ``z ~ N(0, I)``: draws from ``N(mean, scale^2 cov)``; float64 ``[n, d]``."""
        z = torch.randn(n, self.dim, generator=generator, dtype=_F64)  # [n, d]
        return self.mean + scale * z @ self.cholesky.T

    def mahalanobis(self, x: Tensor) -> Tensor:
        """``m(x) = sqrt((x - mean)^T cov^{-1} (x - mean))`` for ``x: [n, d]`` -> ``[n]``."""
        y = (x.to(_F64) - self.mean).reshape(-1, self.dim).T  # [d, n]
        w = torch.linalg.solve_triangular(self.cholesky, y, upper=False)  # [d, n]
        return w.pow(2).sum(0).sqrt()

    def log_prob(self, x: Tensor) -> Tensor:
        """``log N(x) = -(d log 2 pi + log det cov + m(x)^2) / 2`` -> ``[n]``."""
        m = self.mahalanobis(x)
        return -0.5 * (self.dim * math.log(2 * math.pi) + self.logdet + m * m)

    def condition_number(self) -> float:
        ev = torch.linalg.eigvalsh((self.cov + self.cov.T) / 2)
        return float("inf") if float(ev[0]) <= 0 else float(ev[-1] / ev[0])
