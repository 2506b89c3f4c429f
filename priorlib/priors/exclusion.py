"""Two exclusion priors: draws from a broad Gaussian ``N(mu, c Sigma)`` around the reference fit.

``exclusion`` (the paper's rule) accepts a draw with probability ``1 - exp(-(1 - 1/c) m^2 / 2)``.
Its acceptance rate is ``1 - c^(-d/2)``, which at ``d = 576`` and ``c = 5`` is 1 in float64: every
draw is accepted, so in a model's dimension the rule excludes nothing (the broad Gaussian's own
draws already sit at ``m ~ sqrt(c d)``, far outside the fit's high-density region).

``exclusion-radius`` excludes what the paper meant to exclude, the high-density region: it rejects
draws whose Mahalanobis distance under ``N(mu, Sigma)`` is below ``r``, the ``q`` quantile of the chi
distribution with ``d`` degrees of freedom (the radius of the fit's ``q`` high-density region). A
draw of ``N(mu, c Sigma)`` has ``m^2 / c ~ chi2_d``, so the predicted rejection rate is
``chi2_d.cdf(r^2 / c)``; with ``c = 1`` it is ``q``.

    x, stats = exclusion_radius_sample(ref.fit(), 20, torch.Generator().manual_seed(0), q=0.95, c=1.0,
                                       max_draws=100_000)
    stats["rejection_rate"], stats["rejection_rate_predicted"]     # ~0.95, 0.95
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import stats as sps
from torch import Tensor

from ..stats import Gaussian
from .base import check_shrinkage, register_prior
from .reference import Reference

__all__ = ["ExclusionParams", "exclusion_acceptance_rate", "exclusion_sample", "ExclusionRadiusParams",
           "exclusion_radius", "exclusion_radius_rejection_rate", "exclusion_radius_sample"]


@dataclass
class ExclusionParams:
    """The paper's rule: ``sample_prior("exclusion", 20, ref, gen, c=5.0)``."""

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


# ------------------------------------------------------------------------------ exclusion-radius

@dataclass
class ExclusionRadiusParams:
    """Reject the fit's ``q`` high-density region: ``sample_prior("exclusion-radius", 20, ref, gen, q=0.95)``."""

    q: float = 0.95  # the radius is the q quantile of chi_d: the fit's q high-density region
    c: float = 1.0   # proposal covariance factor: N(mu, c Sigma)
    max_draws: int = 100_000
    shrinkage: str | float = "auto"

    def __post_init__(self):
        if not 0 < self.q < 1:
            raise ValueError(f"exclusion-radius: q must be in (0, 1), got {self.q}")
        if not self.c > 0:
            raise ValueError(f"exclusion-radius: c must be > 0, got {self.c}")
        if int(self.max_draws) < 1:
            raise ValueError(f"exclusion-radius: max_draws must be >= 1, got {self.max_draws}")
        check_shrinkage(self.shrinkage)


def exclusion_radius(q: float, d: int) -> float:
    """The Mahalanobis radius of the ``q`` high-density region of a ``d``-dim Gaussian: ``chi_d.ppf(q)``."""
    return float(sps.chi.ppf(q, d))


def exclusion_radius_rejection_rate(q: float, c: float, d: int) -> float:
    """Predicted share of ``N(mu, c Sigma)`` draws inside radius ``r = chi_d.ppf(q)``: ``chi2_d.cdf(r^2 / c)``."""
    return float(sps.chi2.cdf(sps.chi2.ppf(q, d) / c, d))


def exclusion_radius_sample(gaussian: Gaussian, n: int, generator: torch.Generator, q: float, c: float,
                            max_draws: int) -> tuple[Tensor, dict]:
    """``n`` kept draws ``[n, d]`` (float64) and ``{"drawn", "rejected", "rejection_rate",
    "rejection_rate_predicted", "radius"}``; the rate counts every proposal, also those past ``n``."""
    d = gaussian.dim
    r = exclusion_radius(q, d)
    predicted = exclusion_radius_rejection_rate(q, c, d)
    batch = min(16_384, max(64, math.ceil(1.5 * n / max(1 - predicted, 1e-6))))
    kept, n_kept, drawn = [], 0, 0
    while n_kept < n:
        if drawn >= max_draws:
            raise RuntimeError(f"exclusion-radius: only {n_kept} of {n} kept within max_draws={max_draws} "
                               f"(predicted rejection {predicted:.3g}); raise max_draws or c, or lower q")
        b = min(batch, max_draws - drawn)
        x = gaussian.sample(b, generator, scale=math.sqrt(c))  # [b, d]
        keep = gaussian.mahalanobis(x) >= r  # [b]
        kept.append(x[keep])
        n_kept += int(keep.sum())
        drawn += b
    return torch.cat(kept)[:n], {"drawn": drawn, "rejected": drawn - n_kept,
                                 "rejection_rate": (drawn - n_kept) / drawn,
                                 "rejection_rate_predicted": predicted, "radius": r}


@register_prior("exclusion-radius", ExclusionRadiusParams)
def exclusion_radius_prior(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *,
                           q: float, c: float, max_draws: int, shrinkage: str | float) -> Tensor:
    """Exclusion by radius: ``x ~ N(mu, c Sigma)``, rejected when ``m(x) < chi_d.ppf(q)`` under the fit.

    Every kept draw lies outside the fit's ``q`` high-density region; the rejection rate is
    ``chi2_d.cdf(r^2 / c)`` (module doc). Past ``max_draws`` proposals it raises.
    """
    x, _ = exclusion_radius_sample(reference.fit(shrinkage), shape[0], generator, q, c, int(max_draws))
    return x  # [n, d]
