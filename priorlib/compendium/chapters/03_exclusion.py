"""Chapter 03 (paper section 4.3): the Gaussian-exclusion prior.

    C = chapter("03_exclusion")
    dens = C.exclusion_density(reference, c=5.0)
    verdicts, numbers = C.verdicts(dens, quality_rows, placement_rows)
    C.quality_comparison(quality_rows).reason   # TOST of exclusion against the fitted Gaussian
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from priorlib.compendium import decide, runs
from priorlib.compendium.margins import margin
from priorlib.config import TrainConfig
from priorlib.compendium.runs import Settings
from priorlib.compendium.verdicts import Verdict, fmt, outcome_of

STEM = "03_exclusion"


def exclusion_density(reference, *, c: float = 5.0, n: int = 2000, seed: int = 0) -> dict:
    """Mahalanobis distances (under the reference's Gaussian fit) of the vocabulary rows, of ``n``
    exclusion-prior draws and of ``n`` fitted-Gaussian draws; acceptance rates; how peaked each is
    (coefficient of variation = sd / mean) and the 95% region's radius."""
    from priorlib.metrics.placement import hdr_threshold
    from priorlib.priors import exclusion_acceptance_rate
    from priorlib.priors.exclusion import exclusion_radius_sample, exclusion_sample
    g = reference.fit()
    gen = torch.Generator().manual_seed(seed)
    x_exc, stats = exclusion_sample(g, n, gen, c, max_draws=max(100_000, 50 * n))
    x_fit = g.sample(n, torch.Generator().manual_seed(seed + 1))
    # the variant that does exclude: N(mu, Sigma) draws inside the fit's 95% region are rejected
    x_rad, rad = exclusion_radius_sample(g, n, torch.Generator().manual_seed(seed + 2), 0.95, 1.0, max(100_000, 50 * n))
    m = {"vocabulary": g.mahalanobis(reference.vectors).double().numpy(),
         "exclusion": g.mahalanobis(x_exc).double().numpy(),
         "exclusion-radius": g.mahalanobis(x_rad).double().numpy(),
         "fitted-gaussian": g.mahalanobis(x_fit).double().numpy()}
    radius = hdr_threshold(reference.dim)
    summary = {k: {"median": float(np.median(v)), "mean": float(np.mean(v)), "sd": float(np.std(v)),
                   "cv": float(np.std(v) / np.mean(v)), "p05": float(np.quantile(v, 0.05)),
                   "p95": float(np.quantile(v, 0.95)), "share_in_hdr": float(np.mean(v <= radius))}
               for k, v in m.items()}
    # how much of the exclusion sample's range the vocabulary reaches: share of vocabulary rows at least
    # as far out as the closest 5% of exclusion draws
    summary["vocab_beyond_exclusion_p05"] = float(np.mean(m["vocabulary"] >= summary["exclusion"]["p05"]))
    return {"distances": m, "summary": summary, "hdr_radius": radius, "c": c, "dim": reference.dim,
            "acceptance_rate": stats["acceptance_rate"], "acceptance_rate_analytic": exclusion_acceptance_rate(c, reference.dim),
            "radius_variant": rad,
            "expected_exclusion_median": math.sqrt(c * reference.dim)}


def quality_comparison(rows: pd.DataFrame, measure: str = "final_val_loss", arm: str = "exclusion"):
    """:func:`decide.same_quality` of an exclusion arm (the paper's rule, or ``exclusion-radius``) against
    the fitted Gaussian on ``measure``."""
    return decide.same_quality(decide.arm(rows, measure, arm, prior=arm),
                               decide.arm(rows, measure, "fitted-gaussian", prior="fitted-gaussian"), measure)


def vocabulary_peaked(cv_vocabulary: float, cv_fitted: float) -> bool:
    """``vocabulary_peaked(0.14, 0.03)`` -> True: the vocabulary's Mahalanobis distances spread over more
    than twice the relative range of draws from its Gaussian fit (so its mass piles up unlike a Gaussian's)."""
    return cv_vocabulary > 2.0 * cv_fitted


def verdicts(dens: dict, rows: pd.DataFrame, place: pd.DataFrame) -> tuple[list[Verdict], dict]:
    """Closing verdicts of notebook 03.

    1. *The token embeddings' distribution is sharply peaked* (the paper's words are about the
       vocabulary, not the exclusion draws): the coefficient of variation (sd / mean) of the vocabulary's
       Mahalanobis distances under its own fit is over twice that of draws from the fit, which a
       Gaussian in high dimension keeps in a thin shell (:func:`vocabulary_peaked`).
    2. *They avoid the token-embedding density*: under 5 % of draws inside the fit's 95 % region.
    3. *Same final quality as the fitted Gaussian*: final validation loss equivalent (TOST within the
       margin of ``margins.MARGINS``, plateau rule: :func:`quality_comparison`); F1 reported beside it.
    4. *Trained prompts from it stay outside the token region*: median trained Mahalanobis distance of
       exclusion runs above the 95 % radius.
    """
    sm = dens["summary"]
    cv_e, cv_v = sm["exclusion"]["cv"], sm["vocabulary"]["cv"]
    share_e = sm["exclusion"]["share_in_hdr"]
    same = quality_comparison(rows)
    f1 = quality_comparison(rows, "final_f1") if "final_f1" in rows else None
    cmp = {"estimate": same.estimate, "ci": [same.ci_low, same.ci_high], "margin": same.margin,
           "n": [same.n_a, same.n_b], "outcome": same.outcome.value}
    cmp_f1 = {} if f1 is None else {"estimate": f1.estimate, "ci": [f1.ci_low, f1.ci_high], "outcome": f1.outcome.value}
    t = place[place["when"] == "trained"]
    m_exc = float(t.loc[t["prior"] == "exclusion", "median_mahalanobis"].median())
    m_fit = float(t.loc[t["prior"] == "fitted-gaussian", "median_mahalanobis"].median())
    num = {"cv_exclusion": cv_e, "cv_vocabulary": cv_v, "cv_fitted": sm["fitted-gaussian"]["cv"],
           "share_exclusion_in_hdr": share_e, "acceptance_rate": dens["acceptance_rate"],
           "acceptance_rate_analytic": dens["acceptance_rate_analytic"], "val_loss": cmp, "f1": cmp_f1,
           "trained_median_mahalanobis_exclusion": m_exc, "trained_median_mahalanobis_fitted": m_fit,
           "hdr_radius": dens["hdr_radius"]}
    cv_f = sm["fitted-gaussian"]["cv"]
    out = [
        Verdict("The token embeddings' distribution is sharply peaked",
                f"Mahalanobis distance of the vocabulary under its fit {sm['vocabulary']['median']:.1f} ± "
                f"{sm['vocabulary']['sd']:.2f} (sd/mean {cv_v:.3f}) vs draws from the fit "
                f"{sm['fitted-gaussian']['median']:.1f} ± {sm['fitted-gaussian']['sd']:.2f} (sd/mean {cv_f:.3f}); "
                f"exclusion draws {sm['exclusion']['median']:.1f} (sd/mean {cv_e:.3f}), acceptance rate "
                f"{dens['acceptance_rate']:.4f} (analytic {dens['acceptance_rate_analytic']:.4f})",
                outcome_of(vocabulary_peaked(cv_v, cv_f)), claim_id="token-embeddings-peaked"),
        Verdict("Exclusion samples lie outside the token-embedding density",
                f"{100 * share_e:.1f}% of draws inside the fit's 95% region (vocabulary: {100 * sm['vocabulary']['share_in_hdr']:.1f}%, "
                f"fitted Gaussian: {100 * sm['fitted-gaussian']['share_in_hdr']:.1f}%)", outcome_of(share_e < 0.05),
                claim_id="exclusion-outside"),
        Verdict("Training from the exclusion prior reaches the same quality as from the fitted Gaussian",
                f"final val loss, exclusion minus fitted Gaussian (TOST, margin ±{margin('final_val_loss'):g} nats): "
                f"{same.reason}; F1 difference {fmt(cmp_f1.get('estimate'))} points ({cmp_f1.get('outcome', 'n/a')} "
                f"within ±{margin('final_f1'):g})", same.outcome, claim_id="exclusion-same-quality"),
        Verdict("Trained prompts from the exclusion prior stay outside the token-embedding region",
                f"median trained Mahalanobis distance {m_exc:.1f} (exclusion) vs {m_fit:.1f} (fitted Gaussian); "
                f"95% radius {dens['hdr_radius']:.1f}", outcome_of(None if not np.isfinite(m_exc) else m_exc > dens["hdr_radius"]),
                claim_id="exclusion-posterior-outside"),
    ]
    if "exclusion-radius" in set(rows.get("prior", [])):
        out += radius_verdicts(dens, rows, t)
        num["radius_variant"] = dens["radius_variant"]
    return out, num


def radius_verdicts(dens: dict, rows: pd.DataFrame, trained: pd.DataFrame) -> list[Verdict]:
    """The variant that excludes what the paper meant to exclude (our reading, not the paper's rule): its
    rejection rate against the rate its radius predicts, its quality against the fitted Gaussian (TOST),
    and where its trained prompts end."""
    rad = dens["radius_variant"]
    same = quality_comparison(rows, arm="exclusion-radius")
    m_rad = float(trained.loc[trained["prior"] == "exclusion-radius", "median_mahalanobis"].median())
    observed, predicted = rad["rejection_rate"], rad["rejection_rate_predicted"]
    se = math.sqrt(max(predicted * (1 - predicted), 1e-12) / rad["drawn"])
    return [
        Verdict("Radius exclusion (ours) rejects draws at the rate its radius predicts",
                f"{rad['rejected']:,} of {rad['drawn']:,} N(μ, Σ) draws rejected ({observed:.4f}) inside the 95% "
                f"radius {rad['radius']:.1f}; predicted {predicted:.4f} (3 standard errors: {3 * se:.4f})",
                outcome_of(abs(observed - predicted) <= 3 * se), claim_id="radius-rejection-rate"),
        Verdict("Training from radius exclusion (ours) reaches the same quality as from the fitted Gaussian",
                f"final val loss, exclusion-radius minus fitted Gaussian (TOST, margin ±{margin('final_val_loss'):g} "
                f"nats): {same.reason}", same.outcome, claim_id="radius-same-quality"),
        Verdict("Trained prompts from radius exclusion (ours) stay outside the fit's 95% region",
                f"median trained Mahalanobis distance {m_rad:.1f}; 95% radius {dens['hdr_radius']:.1f}",
                outcome_of(None if not np.isfinite(m_rad) else m_rad > dens["hdr_radius"]), claim_id="radius-posterior-outside"),
    ]


def settings(profile: str, *, model=None, priors=None, learning_rates=None, seeds=None, steps=None, batch_size=None,
             n_tokens=None, deep_layers=None, max_length=None, eval_size=None, out_dir=None) -> Settings:
    """This chapter's settings (through :func:`priorlib.compendium.setup.setup`): ``None`` is the profile's value."""
    return runs.settings("03_exclusion", profile, model=model, priors=priors, learning_rates=learning_rates, seeds=seeds,
                         steps=steps, batch_size=batch_size, n_tokens=n_tokens, deep_layers=deep_layers,
                         max_length=max_length, eval_size=eval_size, out_dir=out_dir)


def configs(s: Settings) -> list[TrainConfig]:
    """The runs notebook 03 trains, in the order it asks for them: every prior x learning rate x seed;
    :func:`priorlib.compendium.runs.lr_seed_grid` on ``s.base()``."""
    return runs.lr_seed_grid(s, s.base())


def plan(profile: str = "cpu") -> list[TrainConfig]:
    """Every config the notebook trains in ``profile``, in the order it asks for them: :func:`configs` of its
    default settings, the very call the notebook makes; no model loads, nothing trains."""
    from priorlib.compendium.experiments import unique
    from priorlib.compendium.setup import setup
    return unique(configs(setup(STEM, profile)))
