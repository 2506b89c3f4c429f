"""Chapter 04 (paper section 4.4): priors fitted to activations, and deep prompts.

    C = chapter("04_activation_spaces")
    refs = C.domain_references(model, tok, settings, "layers.29.resid_post")
    sep = C.cluster_separation(refs["web"].vectors, refs["squad"].vectors)   # a protocol.Separation
    verdicts, numbers = C.verdicts({point: sep}, rows, deep_place, act_gap, configs=deep_configs, dim=d)

How far web-text and SQuAD token activations separate is decided by the book's one cluster rule,
:func:`priorlib.protocol.separation` (through :func:`priorlib.compendium.decide.cluster`).
"""
from __future__ import annotations

import pandas as pd
import torch

from priorlib.compendium import decide, runs
from priorlib.compendium import experiments as ex
from priorlib.compendium.margins import margin
from priorlib.config import TrainConfig
from priorlib.compendium.runs import Settings, quiet_capture, steps_metric
from priorlib.compendium.verdicts import Outcome, Verdict

STEM = "04_activation_spaces"
FITTED, DIVERGED = "fitted-gaussian", "xavier"  # the prior fitted to the activations; the diverged init tested


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


def cluster_separation(web, squad, *, seed: int = 0):
    """:func:`priorlib.compendium.decide.cluster` of web-text against SQuAD rows (a ``protocol.Separation``)."""
    return decide.cluster(web, squad, seed=seed)


def converges_later(rows: pd.DataFrame):
    """``(result, measure)``: does deep "cut" from Xavier need more steps than from the fitted Gaussian?
    :func:`decide.faster` of the fitted Gaussian against Xavier on :func:`runs.steps_metric`'s measure."""
    cut = rows[rows["variant"] == "deep cut"]
    measure = steps_metric(cut)
    fit, xav = (decide.arm(cut, measure, p, prior=p) for p in ("fitted-gaussian", "xavier"))
    return decide.faster(fit, xav), measure


def cut_vs_carry(rows: pd.DataFrame, measure: str = "final_val_loss"):
    """:func:`decide.same_quality` of deep "cut" against "carry" (fitted-Gaussian prior) on ``measure``."""
    g = rows[rows["prior"] == "fitted-gaussian"]
    return decide.same_quality(decide.arm(g, measure, "cut", variant="deep cut"),
                               decide.arm(g, measure, "carry", variant="deep carry"), measure)


def deep_lr_scale(runs) -> float:
    """The largest deep-block learning-rate multiplier of ``runs`` (1 for runs recorded without one)."""
    return max((max((r.metrics.get("deep_lr_scale") or {"": 1.0}).values()) for r in runs), default=1.0)


def verdicts(sep: dict, rows: pd.DataFrame, deep_place: pd.DataFrame, act_gap: float, *, configs=None,
             dim: int | None = None, lr_scale: float = 1.0) -> tuple[list[Verdict], dict]:
    """Closing verdicts of notebook 04 (rules: ``margins.RULES``).

    1. *SQuAD does not diverge far from web text (one cluster)*: the opposite of the ``protocol.Separation``
       at the deepest point measured (``sep``: point -> :func:`cluster_separation`).
    2. *Diverged initialisations converge later*: :func:`converges_later` (steps to the common target,
       ``better``); Xavier is the diverged init tested, the fitted Gaussian the reference.
    3. *"cut" and "carry" perform the same*: :func:`cut_vs_carry` (TOST on final validation loss); the
       paper says so of prompts on the token embeddings only, this checks deep prompts.
    4. *Trained deep prompts stay near their prior in activation space*: the movement bound of the deep
       runs' ``configs`` for a ``dim``-vector, at their blocks' learning rate (``lr_scale`` times the
       schedule: :func:`deep_lr_scale`), beside ``act_gap`` (not testable below it); else every run's
       last-layer block moved less than ``act_gap``.
    """
    last = list(sep)[-1]
    later, measure = converges_later(rows)
    same = cut_vs_carry(rows)
    f1 = cut_vs_carry(rows, "final_f1") if "final_f1" in rows else None
    t = deep_place[deep_place["when"] == "trained"]
    stay = float((t["moved_l2"] < act_gap).mean()) if len(t) else float("nan")
    if configs and dim:
        bound = decide.movement(configs, dim, act_gap, scale=lr_scale)
        stay_outcome, stay_why = decide.stays_within(t["moved_l2"], act_gap, bound)
    else:
        bound, stay_outcome, stay_why = None, Outcome.INCONCLUSIVE, "no movement bound (needs the runs and the dimension)"
    cut = rows[rows["variant"] == "deep cut"]
    num = {"separation": {p: {"silhouette": s.estimate, "ci": [s.ci_low, s.ci_high], "null_upper": s.null_upper,
                              "outcome": s.outcome.value} for p, s in sep.items()},
           "steps_to_target_deep_cut": cut.groupby("prior")["steps_to_target"].mean().to_dict(),
           "val_steps_to_target_deep_cut": cut.groupby("prior")["val_steps_to_target"].mean().to_dict(),
           "converge_later_decided_by": measure, "converge_later": later.outcome.value,
           "cut_vs_carry_val_loss": {"estimate": same.estimate, "ci": [same.ci_low, same.ci_high],
                                     "outcome": same.outcome.value},
           "cut_vs_carry_f1": {} if f1 is None else {"estimate": f1.estimate, "outcome": f1.outcome.value},
           "deep_share_moved_less_than_gap": stay, "activation_median_nn_l2": act_gap,
           "movement_bound": None if bound is None else bound.bound}
    out = [
        Verdict("SQuAD activations do not diverge far from web text (C4): one cluster, not two",
                f"at `{last}`, the book's cluster rule (one cluster: not separated): {sep[last].reason}",
                decide.opposite(sep[last].outcome), claim_id="squad-near-web"),
        Verdict("Initialisations that diverge from the activations take longer to converge (tested: Xavier "
                "against the Gaussian fitted to them)",
                f"deep 'cut', {measure}, fitted Gaussian minus Xavier: {later.reason}", later.outcome,
                claim_id="diverged-inits-slower"),
        Verdict("'cut' and 'carry' perform the same (the paper: prompts on the token embeddings only; "
                "checked here on deep prompts)",
                f"final val loss, cut minus carry (TOST, margin ±{margin('final_val_loss'):g} nats): {same.reason}; "
                f"F1 {'n/a' if f1 is None else f1.outcome.value + f' within ±{f1.margin:g} points'}", same.outcome,
                claim_id="cut-carry-same"),
        Verdict("Trained deep prompts stay where their prior put them in activation space",
                f"{stay_why} (the activations' typical neighbour gap)", stay_outcome, claim_id="deep-prompts-stay"),
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


def variants(s: Settings) -> list[dict]:
    """The grid's run variants: for each prior of ``s`` but Xavier (the fitted Gaussian when there is none),
    a soft prompt on the token embeddings, one on the output of layer 0, deep "cut" and deep "carry"; then,
    when Xavier is among the priors, deep "cut" from Xavier (the diverged initialisation)."""
    out = []
    for p in [p for p in s.priors if p != DIVERGED] or [FITTED]:
        out += [dict(prior=p, method="soft", soft_space="tokens"),
                dict(prior=p, method="soft", soft_space="layers.0.resid_post"),
                dict(prior=p, method="deep", deep_mode="cut"),
                dict(prior=p, method="deep", deep_mode="carry")]
    if DIVERGED in s.priors:
        out.append(dict(prior=DIVERGED, method="deep", deep_mode="cut"))
    return out


def configs(s: Settings) -> list[TrainConfig]:
    """The runs notebook 04 trains, in the order it asks for them: every :func:`variants` entry x seed, at
    the first learning rate of ``s``."""
    return ex.grid(s.base(), variant=variants(s), lr=[s.learning_rates[0]], seed=s.seeds)


def plan(profile: str = "cpu") -> list[TrainConfig]:
    """Every config the notebook trains in ``profile``, in the order it asks for them: :func:`configs` of its
    default settings, the very call the notebook makes; no model loads (negative deep layers stay as they are
    in the configs, so their keys need no layer count), nothing trains."""
    from priorlib.compendium.setup import setup
    return ex.unique(configs(setup(STEM, profile)))
