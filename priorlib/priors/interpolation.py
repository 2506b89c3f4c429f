"""``interpolation``: mix draws from the fits of two references, ``x = alpha x_A + (1 - alpha) x_B``."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import check_shrinkage, register_prior
from .reference import Reference


@dataclass
class InterpolationParams:
    other: Reference | None = None  # reference B (reference A is the one sample_prior gets)
    alpha: float | str = 0.5  # weight of A: a float in [0, 1], or "uniform" (alpha ~ U[0, 1] per vector)
    shrinkage: str | float = "auto"

    def __post_init__(self):
        if isinstance(self.alpha, str):
            if self.alpha != "uniform":
                raise ValueError(f"interpolation: alpha must be a float in [0, 1] or 'uniform', got {self.alpha!r}")
        elif not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"interpolation: alpha must be in [0, 1], got {self.alpha}")
        if self.other is not None and not isinstance(self.other, Reference):
            raise ValueError(f"interpolation: other must be a Reference, got {type(self.other).__name__}")
        check_shrinkage(self.shrinkage)


@register_prior("interpolation", InterpolationParams)
def interpolation(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *,
                  other: Reference | None, alpha: float | str, shrinkage: str | float) -> Tensor:
    """Interpolation between two fits: ``x = alpha x_A + (1 - alpha) x_B``.

    ``x_A ~ N(mu_A, Sigma_A)`` (fit of ``reference``) and ``x_B ~ N(mu_B, Sigma_B)`` (fit of ``other``)
    are paired: one independent draw from each fit per prompt vector. So
    ``E[x] = alpha mu_A + (1 - alpha) mu_B`` and ``Cov[x] = alpha^2 Sigma_A + (1 - alpha)^2 Sigma_B``
    for fixed alpha; ``alpha = "uniform"`` draws ``alpha ~ U[0, 1]`` per vector.

        sample_prior("interpolation", 20, reference=A, generator=g, other=B, alpha=0.5)
    """
    if other is None:
        raise ValueError("interpolation: needs a second reference, other=<Reference>")
    if other.dim != reference.dim:
        raise ValueError(f"interpolation: references differ in dim ({reference.dim} vs {other.dim})")
    n = shape[0]
    x_a = reference.fit(shrinkage).sample(n, generator)  # [n, d]
    x_b = other.fit(shrinkage).sample(n, generator)  # [n, d]
    if alpha == "uniform":
        a = torch.rand(n, 1, generator=generator, dtype=torch.float64)  # [n, 1]
    else:
        a = torch.full((n, 1), float(alpha), dtype=torch.float64)
    return a * x_a + (1 - a) * x_b
