"""Chapter 04 (paper section 4.4): priors fitted to activations, and deep prompts.

    C = chapter("04_activation_spaces")
    refs = C.domain_references(model, tok, settings, "layers.29.resid_post")
    acc = two_cloud_separation(refs["web"].vectors, refs["squad"].vectors)["probe_accuracy"]

How far web-text and SQuAD token activations separate is the book's one cluster measure,
:func:`priorlib.metrics.clusters.two_cloud_separation` (cross-validated linear probe on z-scored rows).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from priorlib.compendium import runs
from priorlib.compendium.verdicts import fmt
from priorlib.compendium.runs import Settings, group_compare, quiet_capture, same_within_noise
from priorlib.compendium.verdicts import Outcome, Verdict

STEM = "04_activation_spaces"


def domain_references(model, tok, s: Settings, point: str, domains=("web", "squad")) -> dict:
    """Activation references at ``point`` for each domain's texts (cached on disk by the engine)."""
    from priorlib.initial import activation_reference
    from priorlib.tasks import domain_texts
    cfg = s.base()
    with quiet_capture():
        return {d: activation_reference(model, tok, domain_texts(d, cfg.reference_texts), point,
                                        model_name=s.model, max_length=s.max_length, name=f"{d} @ {point}")
                for d in domains}


def norm_ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    """Median row norm of ``a`` over that of ``b``."""
    return float(a.float().norm(dim=-1).median() / b.float().norm(dim=-1).median())


def verdicts(sep: dict, rows: pd.DataFrame, deep_place: pd.DataFrame, act_gap: float) -> tuple[list[Verdict], dict]:
    """Closing verdicts of notebook 04.

    1. *Web text and SQuAD activations are distinct clusters*: cross-validated probe accuracy
       (:func:`priorlib.metrics.clusters.two_cloud_separation`) >= 0.8 at the deepest point measured.
    2. *Diverged priors converge later*: deep "cut" from Xavier needs more steps than from the Gaussian
       fitted on activations to reach the common training-loss target (mean over seeds; agrees if later).
    3. *"cut" and "carry" perform the same*: |difference of mean final val loss| within max(2 x seed sd, 5 %).
    4. *Trained deep prompts stay near their prior in activation space*: every run's last-layer block
       moved less than the activations' typical neighbour gap ``act_gap``.
    """
    last = list(sep)[-1]
    acc = sep[last]
    cut = rows[rows["variant"] == "deep cut"]
    st = cut.groupby("prior")["steps_to_target"].mean()
    s_fit, s_xav = float(st.get("fitted-gaussian", np.nan)), float(st.get("xavier", np.nan))
    vst = cut.groupby("prior")["val_steps_to_target"].mean()
    g = rows[(rows["prior"] == "fitted-gaussian") & rows["variant"].isin(["deep cut", "deep carry"])]
    cmp = group_compare(g, "final_val_loss", "variant", "deep cut", "deep carry")
    cmp_f1 = group_compare(g, "final_f1", "variant", "deep cut", "deep carry") if "final_f1" in g else {}
    same, spread, tol = same_within_noise({"cut": cmp["mean_a"], "carry": cmp["mean_b"]}, cmp["pooled_sd"])
    t = deep_place[deep_place["when"] == "trained"]
    stay = float((t["moved_l2"] < act_gap).mean()) if len(t) else float("nan")
    num = {"separability": sep, "steps_to_target_deep_cut": st.to_dict(), "val_steps_to_target_deep_cut": vst.to_dict(),
           "cut_vs_carry_val_loss": cmp, "cut_vs_carry_f1": cmp_f1, "deep_share_moved_less_than_gap": stay,
           "activation_median_nn_l2": act_gap}
    v_fit, v_xav = float(vst.get("fitted-gaussian", np.nan)), float(vst.get("xavier", np.nan))
    # the per-batch training loss is noisy enough to touch the target at once in short runs; then only the
    # validation loss (a fixed held-out set) can tell the priors apart, so it decides
    use_val = np.isfinite(v_fit) and np.isfinite(v_xav) and (not (np.isfinite(s_fit) and np.isfinite(s_xav))
                                                             or s_fit == s_xav)
    a_, b_ = (v_fit, v_xav) if use_val else (s_fit, s_xav)
    later = None if not (np.isfinite(a_) and np.isfinite(b_)) else bool(b_ > a_)
    num["converge_later_decided_by"] = "validation loss" if use_val else "training loss"
    out = [
        Verdict("Web text and SQuAD activations form distinct clusters",
                "held-out accuracy of a linear classifier telling web-text from SQuAD tokens: "
                + ", ".join(f"{k}: {v:.3f}" for k, v in sep.items()), Outcome.of(acc >= 0.8)),
        Verdict("Priors that diverge from the activations (Xavier) converge later than priors fitted on them",
                f"deep 'cut' steps to the common validation-loss target: fitted Gaussian {fmt(v_fit)}, Xavier {fmt(v_xav)}; "
                f"to the training-loss target: fitted {fmt(s_fit)}, Xavier {fmt(s_xav)} "
                f"(decided by the {num['converge_later_decided_by']})", Outcome.of(later)),
        Verdict("'cut' and 'carry' deep prompts perform the same",
                f"final val loss cut {cmp['mean_a']:.3f} vs carry {cmp['mean_b']:.3f} (difference {cmp['diff']:+.3f}, "
                f"tolerance {tol:.3f}, Welch p = {fmt(cmp['p_value'], 2)}); F1 {fmt(cmp_f1.get('mean_a'))} vs "
                f"{fmt(cmp_f1.get('mean_b'))}", Outcome.of(same)),
        Verdict("Trained deep prompts stay where their prior put them in activation space",
                f"{fmt(100 * stay, 3)}% of last-layer blocks moved less than the activations' typical neighbour gap "
                f"({act_gap:.3g})", Outcome.of(None if not np.isfinite(stay) else stay == 1.0)),
    ]
    return out, num


def robust_rows(x: torch.Tensor, q: float = 0.99) -> tuple[torch.Tensor, dict]:
    """Rows of ``x`` whose L2 norm is at most the ``q`` quantile, for pictures: a few tokens with huge
    activations (the first position of a text, typically) would otherwise own the first principal
    component. Returns ``(rows, {"dropped", "norm_q", "max_over_median_norm"})``."""
    n = x.float().norm(dim=-1)
    cut = float(torch.quantile(n, q))
    keep = n <= cut
    return x[keep], {"dropped": int((~keep).sum()), "norm_q": cut,
                     "max_over_median_norm": float(n.max() / n.median())}


def settings(profile: str, *, model=None, priors=None, learning_rates=None, seeds=None, steps=None, batch_size=None,
             n_tokens=None, deep_layers=None, max_length=None, eval_size=None, out_dir=None) -> Settings:
    """This chapter's settings (through :func:`priorlib.compendium.setup.setup`): ``None`` is the profile's value."""
    return runs.settings("04_activation_spaces", profile, model=model, priors=priors, learning_rates=learning_rates, seeds=seeds,
                         steps=steps, batch_size=batch_size, n_tokens=n_tokens, deep_layers=deep_layers,
                         max_length=max_length, eval_size=eval_size, out_dir=out_dir)
