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
from priorlib.protocol import Outcome
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
    # where a peaked vocabulary puts its extra mass: below the fit draws' 5th and above their 95th percentile
    summary["vocab_below_fit_p05"] = float(np.mean(m["vocabulary"] < summary["fitted-gaussian"]["p05"]))
    summary["vocab_above_fit_p95"] = float(np.mean(m["vocabulary"] > summary["fitted-gaussian"]["p95"]))
    return {"distances": m, "summary": summary, "hdr_radius": radius, "c": c, "dim": reference.dim,
            "acceptance_rate": stats["acceptance_rate"], "acceptance_rate_analytic": exclusion_acceptance_rate(c, reference.dim),
            "radius_variant": rad,
            "expected_exclusion_median": math.sqrt(c * reference.dim)}


def quality_comparison(rows: pd.DataFrame, measure: str = "final_val_loss", arm: str = "exclusion"):
    """:func:`decide.same_quality` of an exclusion arm (the paper's rule, or ``exclusion-radius``) against
    the fitted Gaussian on ``measure``."""
    return decide.same_quality(decide.arm(rows, measure, arm, prior=arm),
                               decide.arm(rows, measure, "fitted-gaussian", prior="fitted-gaussian"), measure)


PEAKED_FACTOR = 2.0  # the rule of margins.RULES for "token-embeddings-peaked": sd/mean above twice the fit's draws'


def vocabulary_peaked(cv_vocabulary: float, cv_fitted: float) -> bool:
    """``vocabulary_peaked(0.14, 0.03)`` -> True: the vocabulary's Mahalanobis distances spread over more
    than :data:`PEAKED_FACTOR` (twice) the relative range (sd / mean) of draws from its Gaussian fit, so its
    mass piles up unlike a Gaussian's of the same mean and covariance."""
    return cv_vocabulary > PEAKED_FACTOR * cv_fitted


def peaked_reason(sm: dict) -> str:
    """The *sharply peaked* verdict's reason from :func:`exclusion_density`'s summary: what "peaked" means,
    the two spreads and their ratio, where the vocabulary's median sits, and the rule.

        peaked_reason(dens["summary"])   # "peaked relative to a Gaussian of the same mean and covariance ..."
    """
    from priorlib.compendium.margins import RULES
    rule = next(r.rule for r in RULES if r.claim_id == "token-embeddings-peaked")
    v, f, e = sm["vocabulary"], sm["fitted-gaussian"], sm["exclusion"]
    ratio = v["cv"] / f["cv"] if f["cv"] > 0 else float("inf")
    side = "below" if v["median"] < f["median"] else "not below"
    tails = ""
    if "vocab_below_fit_p05" in sm and "vocab_above_fit_p95" in sm:
        tails = (f"; {100 * sm['vocab_below_fit_p05']:.0f}% of the vocabulary lies closer than the draws' 5th "
                 f"percentile and {100 * sm['vocab_above_fit_p95']:.0f}% farther than their 95th (5% each for the fit)")
    return (f"'Sharply peaked' read as: relative to a Gaussian of the same mean and covariance, more mass near the centre "
            f"and in the tails. Mahalanobis distance under the fit, median ± sd: vocabulary {v['median']:.1f} ± "
            f"{v['sd']:.2f} (sd/mean {v['cv']:.3f}), draws from the fit {f['median']:.1f} ± {f['sd']:.2f} (sd/mean "
            f"{f['cv']:.3f}): the vocabulary spreads relative to its mean {ratio:.1f}× as much as the fit's own draws, "
            f"and its median is {side} theirs{tails}. Rule (sd/mean): {rule} (threshold {PEAKED_FACTOR:g}×). "
            f"Exclusion draws: median {e['median']:.1f} (sd/mean {e['cv']:.3f})")


def outside_reason(arm: str, m_arm: float, m_fit: float, radius: float, lrs=(),
                   stat: str = runs.PLACEMENT_STATISTIC) -> str:
    """The reason of a *trained prompts stay outside* verdict: the arm's and the fitted-Gaussian control's
    trained Mahalanobis distance (``stat``: the placement table's, :func:`statistic`) against the 95% radius,
    and whether the control ends outside too (then the check cannot tell the priors apart).

        outside_reason("exclusion", 165.0, 154.0, 25.2, [0.05])   # "... fitted-Gaussian prompts end outside too ..."
    """
    at = f" at lr {', '.join(f'{x:g}' for x in lrs)}" if len(lrs) else ""
    out = (f"trained Mahalanobis distance ({stat}): {m_arm:.1f} ({arm}) vs {m_fit:.1f} "
           f"(fitted Gaussian, the control); 95% radius {radius:.1f}")
    if np.isfinite(m_fit) and m_fit > radius:
        return (out + f". The fitted-Gaussian prompts end outside too{at}, so it is not the prior that keeps them "
                "out: this check cannot tell the priors apart")
    if np.isfinite(m_fit):
        return out + f". The fitted-Gaussian prompts end inside{at}: here the priors end apart"
    return out


OUTSIDE_SHARE = 0.05  # margins.RULES "exclusion-outside": under 5% of draws inside the fit's 95% region


def outside_by_construction(share: float, c: float, d: int, share_vocab: float = float("nan"),
                            share_fit: float = float("nan"), q: float = 0.95) -> tuple[str, Outcome]:
    """``(measured, outcome)`` of *exclusion draws lie outside the token density*: the measured share of
    draws inside the fit's ``q`` region against the share the prior's definition predicts. Its proposals
    are N(mu, c Sigma) and rejection only removes draws near the centre, so at most
    ``chi2_d.cdf(chi2_d^-1(q) / c)`` of them can fall inside (:func:`~priorlib.priors.exclusion_radius_rejection_rate`).
    When that bound is already under :data:`OUTSIDE_SHARE` the claim *holds by construction* (the draws
    could not have come out inside); the measurement still contradicts it if the sampler misbehaves (a
    measured share at or above the threshold). With a bound above the threshold (c near 1) it is a test.

        outside_by_construction(0.0, 5.0, 576)[1]    # HOLDS_BY_CONSTRUCTION: the bound is 3.6e-94
        outside_by_construction(0.02, 1.2, 576)[1]   # AGREES: the bound (7.3%) leaves it to the measurement
    """
    from priorlib.priors import exclusion_radius_rejection_rate
    bound = exclusion_radius_rejection_rate(q, c, d)
    others = ""
    if np.isfinite(share_vocab) and np.isfinite(share_fit):
        others = f" (vocabulary: {100 * share_vocab:.1f}%, fitted Gaussian: {100 * share_fit:.1f}%)"
    measured = (f"{100 * share:.1f}% of draws inside the fit's {100 * q:g}% region{others}; threshold "
                f"{100 * OUTSIDE_SHARE:g}%. The prior's definition allows at most chi2_d.cdf(chi2_d⁻¹({q:g})/c) = "
                f"{bound:.2g} inside (c = {c:g}, d = {d})")
    if share >= OUTSIDE_SHARE:
        return measured + ": the sampler put more inside than the rule allows", Outcome.CONTRADICTS
    if bound < OUTSIDE_SHARE:
        return (measured + ": the draws could not have come out inside, so this holds by construction and is "
                "not counted as support"), Outcome.HOLDS_BY_CONSTRUCTION
    return measured + ": the definition alone does not decide it, and the measured share is under the threshold", \
        Outcome.AGREES


def density_caption(dens: dict) -> str:
    """The caption of the distance histogram (:func:`exclusion_density`): what each histogram holds, each
    one's median and share inside the fit's 95% region, and what the dashed line is.

        density_caption(dens)   # "Mahalanobis distance under the Gaussian fitted to the token embeddings ..."
    """
    sm, m = dens["summary"], dens["distances"]
    parts = [f"{k} (n = {len(m[k]):,}) median {sm[k]['median']:.1f}, {100 * sm[k]['share_in_hdr']:.1f}% inside"
             for k in m if k in sm]
    return (f"Mahalanobis distance (unitless) under the Gaussian fitted to the token embeddings, as density "
            f"histograms: every vocabulary row and the draws of each prior (c = {dens['c']:g} for the exclusion "
            f"prior, d = {dens['dim']}). Dashed: the fit's 95% region, radius {dens['hdr_radius']:.1f}. "
            + "; ".join(parts) + ".")


def quality_caption(rows: pd.DataFrame, measure: str = "final_val_loss", unit: str = "nats per answer token") -> str:
    """The caption of the final-quality bars: per prior, mean ± sd of ``measure`` over its seeds (bars ± sd,
    dots one seed), and how many runs stopped at the step cap.

        quality_caption(rows)   # "Final held-out answer loss ... exclusion 1.331 ± 0.048 (3 seeds); ..."
    """
    g = rows.groupby("prior")[measure].agg(["mean", "std", "size"])
    parts = [f"{p} {r['mean']:.3f} ± {0.0 if pd.isna(r['std']) else r['std']:.3f} ({int(r['size'])} seed"
             f"{'s' if r['size'] != 1 else ''})" for p, r in g.iterrows()]
    capped = int((~rows["plateaued"].fillna(False).astype(bool)).sum()) if "plateaued" in rows else None
    tail = "" if capped is None else f" {capped} of {len(rows)} runs stopped at the step cap, not at the plateau rule."
    return (f"Final held-out answer loss ({unit}) per prior: bar = mean over seeds, whisker = sd, dot = one seed. "
            + "; ".join(parts) + "." + tail)


def placement_sentence(place: pd.DataFrame, radius: float) -> str:
    """``placement_sentence(place, dens["hdr_radius"])`` -> "Trained prompts' Mahalanobis distance (median over
    a prompt's vectors, mean over 3 seeds): exclusion 165.0, ...": the numbers of the placement table's
    column, unrounded, as the verdicts use them (:func:`~priorlib.compendium.runs.trained_mahalanobis`)."""
    tm = runs.trained_mahalanobis(place)
    return (f"Trained prompts' Mahalanobis distance ({statistic(place)}): "
            + ", ".join(f"{k} {v:.1f}" for k, v in tm.items()) + f" (95% radius {radius:.1f}).")


def statistic(place: pd.DataFrame) -> str:
    """``statistic(place)`` -> "median over a prompt's vectors, mean over 3 seeds": the placement table's
    statistic, with the number of trained runs per prior when every prior has the same (and how many
    learning rates those pool, when more than one)."""
    t = place[place["when"] == "trained"]
    n = t.groupby("prior").size()
    if n.nunique() != 1:
        return runs.PLACEMENT_STATISTIC
    k = int(n.iloc[0])
    lrs = t.groupby("prior")["lr"].nunique().max() if "lr" in t else 1
    what = f"{k} run{'s' if k != 1 else ''} ({lrs} learning rates pooled)" if lrs > 1 else f"{k} seed{'s' if k != 1 else ''}"
    return runs.PLACEMENT_STATISTIC.replace("over seeds", f"over {what}")


def verdicts(dens: dict, rows: pd.DataFrame, place: pd.DataFrame) -> tuple[list[Verdict], dict]:
    """Closing verdicts of notebook 03.

    1. *The token embeddings' distribution is sharply peaked* (the paper's words are about the
       vocabulary, not the exclusion draws): the coefficient of variation (sd / mean) of the vocabulary's
       Mahalanobis distances under its own fit is over twice that of draws from the fit, which a
       Gaussian in high dimension keeps in a thin shell (:func:`vocabulary_peaked`; the reason says what
       "peaked" means and gives the rule: :func:`peaked_reason`).
    2. *They avoid the token-embedding density*: under 5 % of draws inside the fit's 95 % region.
    3. *Same final quality as the fitted Gaussian*: final validation loss equivalent (TOST within the
       margin of ``margins.MARGINS``, plateau rule: :func:`quality_comparison`); F1 reported beside it.
    4. *Trained prompts from it stay outside the token region*: trained Mahalanobis distance of the
       exclusion runs (each run's median over its prompt's vectors, mean over seeds: the placement table's
       statistic, :func:`~priorlib.compendium.runs.trained_mahalanobis`) above the 95 % radius; the reason
       says whether the fitted-Gaussian control ends outside too (:func:`outside_reason`).
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
    tm = runs.trained_mahalanobis(t)  # the statistic of the placement table: per-run medians, mean over seeds
    m_exc, m_fit = (float(tm.get(p, float("nan"))) for p in ("exclusion", "fitted-gaussian"))
    lrs = sorted(set(t["lr"])) if "lr" in t else []
    num = {"cv_exclusion": cv_e, "cv_vocabulary": cv_v, "cv_fitted": sm["fitted-gaussian"]["cv"],
           "share_exclusion_in_hdr": share_e, "acceptance_rate": dens["acceptance_rate"],
           "acceptance_rate_analytic": dens["acceptance_rate_analytic"], "val_loss": cmp, "f1": cmp_f1,
           "trained_median_mahalanobis_exclusion": m_exc, "trained_median_mahalanobis_fitted": m_fit,
           "hdr_radius": dens["hdr_radius"]}
    cv_f = sm["fitted-gaussian"]["cv"]
    out = [
        Verdict("The token embeddings' distribution is sharply peaked", peaked_reason(sm) +
                f"; acceptance rate {dens['acceptance_rate']:.4f} (analytic {dens['acceptance_rate_analytic']:.4f})",
                outcome_of(vocabulary_peaked(cv_v, cv_f)), claim_id="token-embeddings-peaked"),
        Verdict("Exclusion samples lie outside the token-embedding density",
                *outside_by_construction(share_e, dens["c"], dens["dim"], sm["vocabulary"]["share_in_hdr"],
                                         sm["fitted-gaussian"]["share_in_hdr"]),
                claim_id="exclusion-outside"),
        Verdict("Training from the exclusion prior reaches the same quality as from the fitted Gaussian",
                f"final val loss, exclusion minus fitted Gaussian (TOST, margin ±{margin('final_val_loss'):g} nats): "
                f"{same.reason}; F1 difference {fmt(cmp_f1.get('estimate'))} points ({cmp_f1.get('outcome', 'n/a')} "
                f"within ±{margin('final_f1'):g})", same.outcome, claim_id="exclusion-same-quality"),
        Verdict("Trained prompts from the exclusion prior stay outside the token-embedding region",
                outside_reason("exclusion", m_exc, m_fit, dens["hdr_radius"], lrs, statistic(t)),
                outcome_of(None if not np.isfinite(m_exc) else m_exc > dens["hdr_radius"]),
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
    tm = runs.trained_mahalanobis(trained)
    m_rad, m_fit = (float(tm.get(p, float("nan"))) for p in ("exclusion-radius", "fitted-gaussian"))
    lrs = sorted(set(trained["lr"])) if "lr" in trained else []
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
                outside_reason("exclusion-radius", m_rad, m_fit, dens["hdr_radius"], lrs, statistic(trained)),
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
