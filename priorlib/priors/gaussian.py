"""Reference-free and Gaussian priors: ``isotropic``, ``xavier``, ``fitted-gaussian``."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .base import check_shrinkage, register_prior
from .reference import Reference


@dataclass
class IsotropicParams:
    sigma: float = 0.02  # the paper's code: torch.randn(...) * 0.02

    def __post_init__(self):
        if not self.sigma > 0:
            raise ValueError(f"isotropic: sigma must be > 0, got {self.sigma}")


@register_prior("isotropic", IsotropicParams)
def isotropic(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *, sigma: float) -> Tensor:
    """Isotropic Gaussian ``x ~ N(0, sigma^2 I)``, blind to the reference.

    ``x = sigma z`` with ``z ~ N(0, I_d)``. The default ``sigma = 0.02`` is what the paper's code uses;
    how big that is depends on the model, so the diagnostics report ``sigma / rms(per-dim std)``.
    """
    return sigma * torch.randn(shape, generator=generator)  # [n, d]


@dataclass
class XavierParams:
    mode: Literal["uniform", "normal"] = "uniform"
    gain: float = 1.0

    def __post_init__(self):
        if self.mode not in ("uniform", "normal"):
            raise ValueError(f"xavier: mode must be uniform or normal, got {self.mode!r}")
        if not self.gain > 0:
            raise ValueError(f"xavier: gain must be > 0, got {self.gain}")


@register_prior("xavier", XavierParams)
def xavier(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *,
           mode: str, gain: float) -> Tensor:
    """Glorot / Xavier: ``U(-a, a)`` or ``N(0, s^2)``, reference-blind.

    ``a = gain sqrt(6 / (fan_in + fan_out))`` (mode ``uniform``, the default) and
    ``s = gain sqrt(2 / (fan_in + fan_out))`` (mode ``normal``): the same variance either way.
    The prompt matrix ``P: [n_tokens, d]`` is treated as a weight with ``fan_in = n_tokens`` and
    ``fan_out = d``. Glorot's variance depends only on ``fan_in + fan_out``, so the opposite
    convention (``torch.nn.init.xavier_*`` on an ``[n, d]`` tensor reads ``fan_in = d``) gives the
    same distribution; with ``n = 20, d = 576`` the std is ``sqrt(2 / 596) ~ 0.058``.
    """
    fan_in, fan_out = shape
    if mode == "uniform":
        a = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return (torch.rand(shape, generator=generator) * 2 - 1) * a  # [n, d]
    return gain * math.sqrt(2.0 / (fan_in + fan_out)) * torch.randn(shape, generator=generator)


@dataclass
class FittedGaussianParams:
    scale: float = 1.0
    shrinkage: str | float = "auto"

    def __post_init__(self):
        if not self.scale > 0:
            raise ValueError(f"fitted-gaussian: scale must be > 0, got {self.scale}")
        check_shrinkage(self.shrinkage)


@register_prior("fitted-gaussian", FittedGaussianParams)
def fitted_gaussian(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *,
                    scale: float, shrinkage: str | float) -> Tensor:
    """Gaussian fitted to the reference: ``x ~ N(mu, scale^2 Sigma)``.

    ``mu`` and ``Sigma`` are the reference's mean and covariance (streamed in float64, optional
    Ledoit-Wolf / fixed shrinkage); ``x = mu + scale L z`` with ``L L^T = Sigma``, ``z ~ N(0, I)``.
    """
    return reference.fit(shrinkage).sample(shape[0], generator, scale=scale)  # [n, d]
