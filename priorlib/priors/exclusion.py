"""``exclusion``: a broad Gaussian with the reference's own cluster cut out (rejection sampling)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..stats import Gaussian
from .base import check_shrinkage, register_prior
from .reference import Reference

__all__ = ["ExclusionParams", "exclusion_acceptance_rate", "exclusion_sample"]


@dataclass
class ExclusionParams:
    c: float = 5.0  # proposal covariance factor (the paper's text)
    max_draws: int = 100_000
    shrinkage: str | float = "auto"

    def __post_init__(self):
        if not self.c > 1:
            raise ValueError(f"exclusion: c must be > 1, got {self.c}")
        if int(self.max_draws) < 1:
            raise ValueError(f"exclusion: max_draws must be >= 1, got {self.max_draws}")
        check_shrinkage(self.shrinkage)


def exclusion_acceptance_rate(c: float, d: int) -> float:
    """Expected acceptance rate ``1 - c^(-d/2)`` (derivation in ``exclusion``'s docstring)."""
    return 1.0 - math.exp(-0.5 * d * math.log(c))


def exclusion_sample(gaussian: Gaussian, n: int, generator: torch.Generator, c: float,
                     max_draws: int) -> tuple[Tensor, dict]:
    """``n`` accepted draws ``[n, d]`` (float64) and ``{"drawn", "accepted", "acceptance_rate"}``.

    Proposals come in batches; the rate counts every accepted proposal, also those beyond ``n``.
    """
    rate = exclusion_acceptance_rate(c, gaussian.dim)
    batch = max(64, math.ceil(1.5 * n / max(rate, 1e-6)))
    kept, n_kept, drawn = [], 0, 0
    while n_kept < n:
        if drawn >= max_draws:
            raise RuntimeError(f"exclusion: only {n_kept} of {n} accepted within max_draws={max_draws} "
                               f"(expected acceptance {rate:.3g}); raise max_draws or c")
        b = min(batch, max_draws - drawn)
        x = gaussian.sample(b, generator, scale=math.sqrt(c))  # [b, d]
        m = gaussian.mahalanobis(x)  # [b]
        accept = torch.rand(b, generator=generator, dtype=torch.float64) < -torch.expm1(-(1 - 1 / c) * m * m / 2)
        kept.append(x[accept])
        n_kept += int(accept.sum())
        drawn += b
    return torch.cat(kept)[:n], {"drawn": drawn, "accepted": n_kept, "acceptance_rate": n_kept / drawn}


@register_prior("exclusion", ExclusionParams)
def exclusion(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *,
              c: float, max_draws: int, shrinkage: str | float) -> Tensor:
    """Exclusion prior: propose ``x ~ N(mu, c Sigma)``, accept with ``1 - exp(-(1 - 1/c) m^2 / 2)``.

    ``m`` is the Mahalanobis distance of ``x`` under the reference fit ``N(mu, Sigma)``. Since
    ``N(x; mu, c Sigma) exp(-(1 - 1/c) m^2 / 2) = c^(-d/2) N(x; mu, Sigma)``, the accepted density is
    ``(N(x; mu, c Sigma) - c^(-d/2) N(x; mu, Sigma)) / (1 - c^(-d/2))``: the broad Gaussian minus the
    reference's cluster, accepted at rate ``1 - c^(-d/2)``. Past ``max_draws`` proposals it raises.
    """
    x, _ = exclusion_sample(reference.fit(shrinkage), shape[0], generator, c, int(max_draws))
    return x  # [n, d]
