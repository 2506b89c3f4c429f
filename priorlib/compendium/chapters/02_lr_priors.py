"""Chapter 02 (paper section 4.2): learning rate and prior; where trained soft prompts end, and their quality.

    C = chapter("02_lr_priors")
    verdicts, verdict_numbers = C.verdicts(quality_rows, placement_rows, baseline, settings, dim=reference.dim)

The grid, the quality and placement tables are shared with chapters 03, 04, 07-09
(:mod:`priorlib.compendium.runs`); this module holds what only notebook 02 decides.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from priorlib.compendium import decide, runs
from priorlib.compendium.margins import margin
from priorlib.config import TrainConfig
from priorlib.compendium.runs import PAPER_LRS, Settings, rank_correlation
from priorlib.compendium.verdicts import Outcome, Verdict, fmt, outcome_of

STEM = "02_lr_priors"


def same_quality_across_priors(rows: pd.DataFrame, lr: float, measure: str = "final_val_loss") -> tuple[Outcome, list]:
    """Each prior's per-seed ``measure`` at ``lr`` against the first prior's (:func:`decide.same_quality`);
    the claim agrees only when every prior is equivalent to it (:func:`decide.every`)."""
    at = rows[np.isclose(rows["lr"].astype(float), lr)]
    priors = list(dict.fromkeys(at["prior"]))
    if len(priors) < 2:
        return Outcome.INCONCLUSIVE, []
    ref = decide.arm(at, measure, priors[0], prior=priors[0])
    tests = [(p, decide.same_quality(decide.arm(at, measure, p, prior=p), ref, measure)) for p in priors[1:]]
    return decide.every(t.outcome for _, t in tests), tests


def verdicts(rows: pd.DataFrame, place: pd.DataFrame, baseline: dict, s: Settings, *,
             dim: int | None = None) -> tuple[list[Verdict], dict]:
    """The closing verdicts of notebook 02 and the numbers behind them (rules: ``margins.RULES``).

    1. *The prior decides where trained prompts end*: Spearman correlation, over runs, of the sampled and
       trained median distance to the nearest token embedding (agrees: rho >= 0.7).
    2. *Prompts stay near their prior at the paper's learning rates*: the most Adam could move a
       ``dim``-vector at those rates (:func:`decide.movement`) beside the token embeddings' typical
       neighbour gap; not testable when below it, else agrees when every run moved less than the gap.
    3. *Final quality is the same across priors*: at the replicated learning rate, every prior's final
       validation loss is equivalent (TOST, ``margins.MARGINS``) to the first prior's.
    """
    num: dict = {}
    t = place[place["when"] == "trained"].reset_index(drop=True)
    sm = place[place["when"] == "sampled"].reset_index(drop=True)
    rho = rank_correlation(sm["median_nn_l2"], t["median_nn_l2"])
    num["rho_sampled_trained_nn_l2"] = rho
    gap = float(baseline["median_nn_l2"])
    num["vocab_median_nn_l2"] = gap
    paper = t[[any(math.isclose(lr, q) for q in PAPER_LRS) for lr in t["lr"]]]
    stay = float((paper["moved_l2"] < gap).mean()) if len(paper) else float("nan")
    num["share_paper_lr_runs_moved_less_than_token_gap"] = stay
    moved = t.groupby("lr")["moved_l2"].median()
    num["median_moved_l2_by_lr"] = {f"{k:g}": float(v) for k, v in moved.items()}
    paper_cfgs = [c for c in configs(s) if any(math.isclose(c.lr, q) for q in PAPER_LRS)]
    if dim is None or not paper_cfgs:
        stay_outcome, stay_why = Outcome.INCONCLUSIVE, "no movement bound (needs the prompt dimension and a paper rate)"
    else:
        bound = decide.movement(paper_cfgs, dim, gap)
        num["movement_bound_paper_lrs"] = bound.bound
        stay_outcome, stay_why = decide.stays_within(paper["moved_l2"], gap, bound)
    lr_q = s.replicate_lr if s.replicate_lr is not None else s.learning_rates[-1]
    same, tests = same_quality_across_priors(rows, lr_q)
    at = rows[np.isclose(rows["lr"].astype(float), lr_q)]
    means = at.groupby("prior")["final_val_loss"].mean().to_dict()
    f1 = at.groupby("prior")["final_f1"].mean() if "final_f1" in at else pd.Series(dtype=float)
    num.update(quality_lr=lr_q, final_val_loss_by_prior=means,
               final_val_loss_range=float(max(means.values()) - min(means.values())) if means else float("nan"),
               final_val_loss_margin=margin("final_val_loss"),
               final_val_loss_tests={p: {"estimate": r.estimate, "ci": [r.ci_low, r.ci_high], "outcome": r.outcome.value}
                                     for p, r in tests},
               final_f1_by_prior=f1.to_dict(), final_f1_range=float(f1.max() - f1.min()) if len(f1) else float("nan"))
    moved_txt = ", ".join(f"{k}: {v:.3g}" for k, v in num["median_moved_l2_by_lr"].items())
    ref = next(iter(means), "?")
    out = [
        Verdict("The prior decides where trained soft prompts end up (posteriors differ by prior)",
                f"Spearman ρ = {fmt(rho, 2)} between each run's sampled and trained median distance to the nearest "
                f"token embedding ({len(t)} runs, all learning rates; agreement needs ρ ≥ 0.7)",
                outcome_of(None if not np.isfinite(rho) else rho >= 0.7), claim_id="prior-decides-posterior"),
        Verdict("Prompts stay near where their prior put them at the paper's learning rates",
                f"{stay_why}; token embeddings' typical neighbour gap {gap:.3g}; median movement by lr: {moved_txt}",
                stay_outcome, claim_id="prompts-stay-near-prior"),
        Verdict("Final quality is the same whichever prior starts the prompt",
                f"at lr {lr_q:g}: final validation loss {', '.join(f'{k} {v:.3f}' for k, v in means.items())}; against "
                f"{ref} (TOST, margin ±{margin('final_val_loss'):g} nats): "
                + ("; ".join(f"{p}: {r.outcome.value} ({r.reason})" for p, r in tests) or "fewer than two priors")
                + f"; F1 range {fmt(num['final_f1_range'])} points",
                same, claim_id="quality-independent-of-prior"),
    ]
    return out, num


def settings(profile: str, *, model=None, priors=None, learning_rates=None, seeds=None, steps=None, batch_size=None,
             n_tokens=None, deep_layers=None, max_length=None, eval_size=None, out_dir=None) -> Settings:
    """This chapter's settings (through :func:`priorlib.compendium.setup.setup`): ``None`` is the profile's value."""
    return runs.settings("02_lr_priors", profile, model=model, priors=priors, learning_rates=learning_rates, seeds=seeds,
                         steps=steps, batch_size=batch_size, n_tokens=n_tokens, deep_layers=deep_layers,
                         max_length=max_length, eval_size=eval_size, out_dir=out_dir)


def configs(s: Settings) -> list[TrainConfig]:
    """The runs notebook 02 trains, in the order it asks for them: every prior x learning rate at the first
    seed, plus the other seeds at ``s.replicate_lr`` (at every rate when it is None);
    :func:`priorlib.compendium.runs.lr_seed_grid` on ``s.base()``."""
    return runs.lr_seed_grid(s, s.base())


def plan(profile: str = "cpu") -> list[TrainConfig]:
    """Every config the notebook trains in ``profile``, in the order it asks for them: :func:`configs` of its
    default settings, the very call the notebook makes; no model loads, nothing trains."""
    from priorlib.compendium.experiments import unique
    from priorlib.compendium.setup import setup
    return unique(configs(setup(STEM, profile)))
