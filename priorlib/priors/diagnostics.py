"""Where does each prior put its draws? ``prior_diagnostics`` (one prior) and ``diagnostics_table`` (many).

Every prior gets ``placement_metrics`` (NN distances, Mahalanobis distance, log-density percentile,
share in the 95% region, and the reference's own baseline); some get extras:

- ``isotropic``: ``sigma_over_ref_std = sigma / sqrt(tr(Sigma) / d)`` (sigma relative to the rms
  per-dimension std of the reference)
- ``exclusion``: empirical and analytic (``1 - c^(-d/2)``) acceptance rates (1 at d = 576, c = 5)
- ``exclusion-radius``: the radius, empirical and predicted (``chi2_d.cdf(r^2 / c)``) rejection rates
- ``vae``: active units, KL per latent dim, decoded / data variance ratio, reconstruction error
- ``low-density``: k-NN threshold and acceptance rate
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from ..metrics.placement import placement_metrics
from .base import as_generator, make_params, sample_prior
from .exclusion import exclusion_acceptance_rate, exclusion_radius_sample, exclusion_sample
from .lowdensity import low_density_sample
from .reference import Reference
from .vae import load_or_train_vae, vae_diagnostics

__all__ = ["prior_diagnostics", "diagnostics_table"]


def _isotropic_extras(reference: Reference, p, n: int, seed: int) -> dict:
    rms_std = math.sqrt(float(torch.trace(reference.fit().cov)) / reference.dim)
    return {"sigma_over_ref_std": p.sigma / rms_std, "ref_rms_std": rms_std}


def _exclusion_extras(reference: Reference, p, n: int, seed: int) -> dict:
    _, stats = exclusion_sample(reference.fit(p.shrinkage), n, as_generator(seed), p.c, int(p.max_draws))
    return {**stats, "acceptance_rate_analytic": exclusion_acceptance_rate(p.c, reference.dim)}


def _exclusion_radius_extras(reference: Reference, p, n: int, seed: int) -> dict:
    return exclusion_radius_sample(reference.fit(p.shrinkage), n, as_generator(seed), p.q, p.c, int(p.max_draws))[1]


def _vae_extras(reference: Reference, p, n: int, seed: int) -> dict:
    out = vae_diagnostics(load_or_train_vae(reference, p), reference.vectors, as_generator(seed))
    out["kl_per_dim"] = out["kl_per_dim"].tolist()
    return out


def _low_density_extras(reference: Reference, p, n: int, seed: int) -> dict:
    return low_density_sample(reference, n, as_generator(seed), p)[1]


EXTRAS: dict[str, Callable[[Reference, Any, int, int], dict]] = {
    "isotropic": _isotropic_extras, "exclusion": _exclusion_extras, "exclusion-radius": _exclusion_radius_extras,
    "vae": _vae_extras,
    "low-density": _low_density_extras,
}


def prior_diagnostics(name: str, reference: Reference, n: int = 20, seed: int = 0,
                      decode: Callable[[int], str] | None = None, against: Reference | None = None,
                      **params) -> dict:
    """Draw ``n`` vectors from prior ``name`` (seed ``seed``) and measure where they sit.

    Returns ``placement_metrics(...)`` (against ``against``, default ``reference``) plus ``"prior"``,
    ``"samples"`` and ``"extras"`` (see module doc). The extras re-run the sampler with the same
    seed, so they describe exactly these draws.
    """
    p = make_params(name, params)
    x = sample_prior(name, n, reference, as_generator(seed), params=p)  # [n, d]
    out = placement_metrics(x, against if against is not None else reference, decode=decode)
    out.update(prior=name, samples=x, extras=EXTRAS[name](reference, p, n, seed) if name in EXTRAS else {})
    return out


def diagnostics_table(reference: Reference, priors: Sequence[str | tuple[str, dict]] = (), n: int = 20,
                      seed: int = 0):
    """One row per prior (plus the reference baseline): medians of NN L2 / cosine distance,
    Mahalanobis distance, log-density percentile, and the share in the 95% region.

    ``priors`` are names or ``(name, params)`` pairs, e.g. ``("interpolation", {"other": ref_b})``.
    """
    import pandas as pd

    cols = ["median_nn_l2", "median_nn_cos", "median_mahalanobis", "share_in_hdr"]
    rows, baseline = [], None
    for item in priors:
        name, params = (item, {}) if isinstance(item, str) else item
        d = prior_diagnostics(name, reference, n=n, seed=seed, **params)
        rows.append({"prior": name, **{c: d[c] for c in cols},
                     "median_logdensity_percentile": d["median_logdensity_percentile"]})
        baseline = d["baseline"]
    if baseline is None:
        baseline = placement_metrics(reference.vectors[:1], reference)["baseline"]
    rows.append({"prior": f"reference ({reference.name})", **{c: baseline[c] for c in cols},
                 "median_logdensity_percentile": 0.5})  # reference rows: 0.5 by construction
    return pd.DataFrame(rows).set_index("prior")
