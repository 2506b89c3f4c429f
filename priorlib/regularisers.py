"""Penalties on where the token-level prompt goes, added to the answer loss with a weight each.

For soft-prompt rows ``p_i`` (``[n, d]``), their prior sample ``p0_i``, and the token-embedding
reference (rows ``E``, Gaussian fit ``N(mu, Sigma)``, high-density radius ``r``, the square root of
the chi-square_d 0.95 quantile):

- ``prior_l2``          mean_i |p_i - p0_i|^2                          pull towards the prompt's own prior sample
- ``mahalanobis``       mean_i m(p_i)^2 / d                            pull into the pretrained Gaussian
- ``mahalanobis_hinge`` mean_i relu(r - m(p_i))^2 / d                  push out of its high-density region
- ``nearest_token``     mean_i min_j |p_i - E_j|                       "waywardness": stay near real tokens

(weight decay, the fourth, is AdamW's own ``weight_decay``.) The Mahalanobis terms are divided by
``d`` so their weights are comparable across models.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported on first use, so the CLI's checks fail fast without it
    import torch


@dataclass(frozen=True)
class RegulariserSpec:
    """One regulariser: its name, the :class:`~priorlib.TrainConfig` field holding its weight, the placement
    measure it acts on directly, and the way it should move it (-1: a pull lowers it, +1: a push raises it).

        REGULARISERS["mahalanobis"].field    # 'reg_mahalanobis'
    """
    name: str
    field: str
    acts_on: str
    direction: int
    title: str
    short: str


# the one list of regularisers: CLI flags (--reg-NAME), TrainConfig fields, chapter 07's sweep and its legends
REGULARISERS: dict[str, RegulariserSpec] = {r.name: r for r in (
    RegulariserSpec("prior_l2", "reg_prior_l2", "moved_l2", -1, "L2 pull to the prompt's own prior sample",
                    "L2 to prior sample"),
    RegulariserSpec("mahalanobis", "reg_mahalanobis", "median_mahalanobis", -1,
                    "Mahalanobis pull into the token-embedding Gaussian", "Mahalanobis pull"),
    RegulariserSpec("mahalanobis_hinge", "reg_mahalanobis_hinge", "median_mahalanobis", +1,
                    "hinge out of the Gaussian's 95% region", "Mahalanobis hinge"),
    RegulariserSpec("nearest_token", "reg_nearest_token", "median_nn_l2", -1,
                    "nearest-token distance ('waywardness')", "nearest token"),
    RegulariserSpec("weight_decay", "weight_decay", "median_norm", -1, "AdamW weight decay (towards 0)",
                    "weight decay"),
)}
PENALTIES = tuple(n for n in REGULARISERS if n != "weight_decay")  # the terms added to the loss


@dataclass
class RegulariserWeights:
    """The weights of the penalty terms (:data:`PENALTIES`); ``RegulariserWeights.from_config(cfg)``."""
    prior_l2: float = 0.0
    mahalanobis: float = 0.0
    mahalanobis_hinge: float = 0.0
    nearest_token: float = 0.0

    def __post_init__(self):
        for k, v in vars(self).items():
            if not float(v) >= 0:
                raise ValueError(f"regulariser weight {k} must be >= 0, got {v}")

    @classmethod
    def from_config(cls, config) -> "RegulariserWeights":
        return cls(**{f.name: getattr(config, REGULARISERS[f.name].field) for f in fields(cls)})

    @property
    def active(self) -> bool:
        return any(float(v) > 0 for v in vars(self).values())


class Penalty:
    """The weighted penalty terms of one run, around its prior sample ``start`` (``[n, d]``).

        pen = Penalty(RegulariserWeights(prior_l2=10.0), start=prompt0, reference=token_ref)
        total, terms = pen.penalty(prompt)          # a scalar tensor, {"prior_l2": float}
    """

    def __init__(self, weights: RegulariserWeights, start: torch.Tensor, reference=None):
        self.w = weights
        self.start = start.detach().float().clone()  # [n, d]
        self.needs_ref = weights.mahalanobis > 0 or weights.mahalanobis_hinge > 0 or weights.nearest_token > 0
        if self.needs_ref:
            if reference is None:
                raise ValueError("the Mahalanobis and nearest-token penalties need the token-embedding reference")
            from .metrics.placement import hdr_threshold
            g = reference.fit()
            self.mu = g.mean.float()
            self.L = g.cholesky.float()  # [d, d]
            self.radius = hdr_threshold(reference.dim)
            self.rows = reference.vectors  # [V, d]

    def _maha(self, p: torch.Tensor) -> torch.Tensor:
        import torch
        w = torch.linalg.solve_triangular(self.L, (p - self.mu).T, upper=False)  # [d, n]
        return w.pow(2).sum(0).clamp_min(1e-12).sqrt()  # [n]

    def terms(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        import torch
        p = p.float()
        d = p.shape[-1]
        out = {}
        if self.w.prior_l2 > 0:
            out["prior_l2"] = (p - self.start).pow(2).sum(-1).mean()
        if self.w.mahalanobis > 0 or self.w.mahalanobis_hinge > 0:
            m = self._maha(p)
            if self.w.mahalanobis > 0:
                out["mahalanobis"] = m.pow(2).mean() / d
            if self.w.mahalanobis_hinge > 0:
                out["mahalanobis_hinge"] = torch.relu(self.radius - m).pow(2).mean() / d
        if self.w.nearest_token > 0:
            out["nearest_token"] = torch.cdist(p, self.rows).min(dim=1).values.mean()
        return out

    def penalty(self, p: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        terms = self.terms(p)
        total = sum(getattr(self.w, k) * v for k, v in terms.items())
        return total, {k: float(v.detach()) for k, v in terms.items()}
