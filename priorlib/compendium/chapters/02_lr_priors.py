"""Chapter 02 (paper section 4.2): learning rate and prior; where trained soft prompts end, and their quality.

    C = chapter("02_lr_priors")
    verdicts, verdict_numbers = C.verdicts(quality_rows, placement_rows, baseline, settings)

The grid, the quality and placement tables are shared with chapters 03, 04, 07-09
(:mod:`priorlib.compendium.runs`); this module holds what only notebook 02 decides.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from priorlib.compendium import runs
from priorlib.compendium.verdicts import fmt
from priorlib.compendium.runs import (PAPER_LRS, Settings, pooled_seed_sd, rank_correlation,
                                      same_within_noise)
from priorlib.compendium.verdicts import Outcome, Verdict

STEM = "02_lr_priors"


def verdicts(rows: pd.DataFrame, place: pd.DataFrame, baseline: dict, s: Settings) -> tuple[list[Verdict], dict]:
    """The closing verdicts of notebook 02 and the numbers behind them.

    1. *The prior decides where trained prompts end*: Spearman correlation, over runs, of the sampled and
       trained median distance to the nearest token embedding (agrees: rho >= 0.7).
    2. *Prompts stay near their prior at the paper's learning rates*: share of runs at the paper's rates
       whose vectors moved (median L2) less than the typical gap between neighbouring token embeddings
       (the vocabulary's own median NN distance) (agrees: all of them).
    3. *Final quality is the same across priors*: at the replicated learning rate, the range of mean final
       validation loss across priors is within max(2 x seed sd, 5 %) (see :func:`same_within_noise`).
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
    lr_q = s.replicate_lr if s.replicate_lr is not None else s.learning_rates[-1]
    at = rows[np.isclose(rows["lr"].astype(float), lr_q)]
    means = at.groupby("prior")["final_val_loss"].mean().to_dict()
    sd = pooled_seed_sd(at, "final_val_loss", ["prior"])
    same, spread, tol = same_within_noise(means, sd)
    f1 = at.groupby("prior")["final_f1"].mean() if "final_f1" in at else pd.Series(dtype=float)
    num.update(quality_lr=lr_q, final_val_loss_by_prior=means, final_val_loss_seed_sd=sd,
               final_val_loss_range=spread, final_val_loss_tolerance=tol,
               final_f1_by_prior=f1.to_dict(), final_f1_range=float(f1.max() - f1.min()) if len(f1) else float("nan"))
    moved_txt = ", ".join(f"{k}: {v:.3g}" for k, v in num["median_moved_l2_by_lr"].items())
    out = [
        Verdict("The prior decides where trained soft prompts end up (posteriors differ by prior)",
                f"Spearman ρ = {fmt(rho, 2)} between each run's sampled and trained median distance to the nearest "
                f"token embedding ({len(t)} runs, all learning rates; agreement needs ρ ≥ 0.7)",
                Outcome.of(None if not np.isfinite(rho) else rho >= 0.7)),
        Verdict("Prompts stay near where their prior put them at the paper's learning rates",
                f"{fmt(100 * stay, 3)}% of runs at the paper's rates moved less than the token embeddings' typical "
                f"neighbour gap ({gap:.3g}); median movement by lr: {moved_txt}",
                Outcome.of(None if not np.isfinite(stay) else stay == 1.0)),
        Verdict("Final quality is the same whichever prior starts the prompt",
                f"at lr {lr_q:g}: final validation loss {', '.join(f'{k} {v:.3f}' for k, v in means.items())}; range "
                f"{spread:.3f} vs tolerance {tol:.3f} (2 × seed sd {fmt(sd)} or 5%); F1 range {fmt(num['final_f1_range'])} points",
                Outcome.of(same)),
    ]
    return out, num


def settings(profile: str, *, model=None, priors=None, learning_rates=None, seeds=None, steps=None, batch_size=None,
             n_tokens=None, deep_layers=None, max_length=None, eval_size=None, out_dir=None) -> Settings:
    """This chapter's settings (through :func:`priorlib.compendium.setup.setup`): ``None`` is the profile's value."""
    return runs.settings("02_lr_priors", profile, model=model, priors=priors, learning_rates=learning_rates, seeds=seeds,
                         steps=steps, batch_size=batch_size, n_tokens=n_tokens, deep_layers=deep_layers,
                         max_length=max_length, eval_size=eval_size, out_dir=out_dir)
