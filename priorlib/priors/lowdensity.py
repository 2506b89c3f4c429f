"""``low-density``: draws kept only where the reference is sparse (large k-NN distance)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..metrics.placement import nearest_neighbours
from .base import check_shrinkage, register_prior
from .reference import Reference

__all__ = ["LowDensityParams", "knn_threshold", "low_density_sample"]


@dataclass
class LowDensityParams:
    proposal: Literal["gaussian", "box"] = "gaussian"
    c: float = 4.0  # gaussian proposal: N(mu, c Sigma)
    k: int = 10
    quantile: float = 0.99
    subsample: int = 2048  # reference rows used to estimate the threshold
    max_draws: int = 100_000
    shrinkage: str | float = "auto"

    def __post_init__(self):
        if self.proposal not in ("gaussian", "box"):
            raise ValueError(f"low-density: proposal must be gaussian or box, got {self.proposal!r}")
        if not self.c > 0:
            raise ValueError(f"low-density: c must be > 0, got {self.c}")
        if int(self.k) < 1:
            raise ValueError(f"low-density: k must be >= 1, got {self.k}")
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"low-density: quantile must be in (0, 1), got {self.quantile}")
        if int(self.subsample) < 2:
            raise ValueError(f"low-density: subsample must be >= 2, got {self.subsample}")
        if int(self.max_draws) < 1:
            raise ValueError(f"low-density: max_draws must be >= 1, got {self.max_draws}")
        check_shrinkage(self.shrinkage)


def knn_threshold(reference: Reference, k: int, quantile: float, subsample: int,
                  generator: torch.Generator) -> float:
    """``quantile`` of the reference's own k-NN distances (``subsample`` rows vs all others, self excluded)."""
    if k >= len(reference):
        raise ValueError(f"low-density: k={k} needs more than {len(reference)} reference rows")
    sub = torch.randperm(len(reference), generator=generator)[:subsample]
    dist, _ = nearest_neighbours(reference.vectors[sub], reference.vectors, k=k, exclude=sub)  # [s, k]
    return float(torch.quantile(dist[:, -1].double(), quantile))


def low_density_sample(reference: Reference, n: int, generator: torch.Generator, p: LowDensityParams
                       ) -> tuple[Tensor, dict]:
    """``n`` accepted draws ``[n, d]`` and ``{"threshold", "drawn", "acceptance_rate"}``."""
    threshold = knn_threshold(reference, int(p.k), p.quantile, int(p.subsample), generator)
    if p.proposal == "gaussian":
        gauss = reference.fit(p.shrinkage)
        propose = (lambda b: gauss.sample(b, generator, scale=math.sqrt(p.c)).float())
    else:
        lo, hi = reference.vectors.min(0).values, reference.vectors.max(0).values  # [d]
        propose = (lambda b: lo + (hi - lo) * torch.rand(b, reference.dim, generator=generator))
    batch = max(256, 8 * n)
    kept, n_kept, drawn = [], 0, 0
    while n_kept < n:
        if drawn >= p.max_draws:
            raise RuntimeError(f"low-density: only {n_kept} of {n} draws beyond the k-NN threshold "
                               f"{threshold:.4g} within max_draws={p.max_draws}; raise max_draws or c, "
                               "or lower quantile")
        x = propose(min(batch, p.max_draws - drawn))  # [b, d]
        dist, _ = nearest_neighbours(x, reference.vectors, k=int(p.k))  # [b, k]
        keep = dist[:, -1] > threshold
        kept.append(x[keep])
        n_kept += int(keep.sum())
        drawn += x.shape[0]
    return torch.cat(kept)[:n], {"threshold": threshold, "drawn": drawn, "acceptance_rate": n_kept / drawn}


@register_prior("low-density", LowDensityParams)
def low_density(generator: torch.Generator, shape: tuple[int, int], reference: Reference, **params) -> Tensor:
    """Low-density prior: ``x ~ q`` kept iff ``r_k(x) > Q_quantile({r_k(r_j)})``.

    ``q`` is ``N(mu, c Sigma)`` (the reference fit, broadened) or uniform on the reference's bounding
    box; ``r_k(x)`` is the distance from ``x`` to its k-th nearest reference row, and the threshold
    is the ``quantile`` of the same distance for ``subsample`` reference rows (each to the *other*
    rows). Accepted draws sit where the reference is sparser than for 99% of its own rows.
    """
    x, _ = low_density_sample(reference, shape[0], generator, LowDensityParams(**params))
    return x  # [n, d]
