"""Chapter 02 (paper section 4.2): learning rate and prior; where trained soft prompts end, and their quality.

    C = chapter("02_lr_priors")
    verdicts, verdict_numbers = C.verdicts(quality_rows, placement_rows, baseline, settings, dim=reference.dim)
    C.no_collapse(C.prompt_shares(placement_rows_at_lr, n_tokens), C.collapsed_level(0.6), movable=True)

The grid, the quality and placement tables are shared with chapters 03, 04, 07-09
(:mod:`priorlib.compendium.runs`); this module holds what only notebook 02 decides.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from priorlib import protocol
from priorlib.compendium import decide, runs
from priorlib.compendium.margins import margin
from priorlib.config import TrainConfig
from priorlib.compendium.runs import PAPER_LRS, Settings, rank_correlation
from priorlib.compendium.verdicts import Outcome, Verdict, fmt

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


COLLAPSED_AT = 0.95  # a share inside the token Gaussian's 95% region this high is "in the token cloud"
REFERENCE_PRIOR = "vocab-sample"  # the init the paper's "no prior improves" compares against


def collapsed_level(vocab_share: float | None) -> float:
    """The share inside the token Gaussian's 95% region at which prompts count as collapsed into the token
    cloud: as far inside as the vocabulary itself, and never above 0.95 (:data:`COLLAPSED_AT`).

        collapsed_level(0.62) -> 0.62;  collapsed_level(0.99) -> 0.95;  collapsed_level(None) -> 0.95
    """
    if vocab_share is None or not np.isfinite(float(vocab_share)) or float(vocab_share) <= 0:
        return COLLAPSED_AT
    return min(COLLAPSED_AT, float(vocab_share))


def inside_class(k: int, n: int, level: float) -> tuple[str, tuple[float, float]]:
    """``(class, 95% Clopper-Pearson interval)`` of ``k`` of ``n`` vectors inside the region: ``"collapsed"``
    when the share ``k / n`` is at least ``level``; ``"outside"`` when the interval's upper end is below it
    (clearly less inside than collapsed prompts); else ``"undecided"``. The interval treats the vectors as
    independent draws (the vectors of one prompt are not quite: read it as a yardstick, not an exact test)."""
    if n <= 0:
        return "undecided", (math.nan, math.nan)
    from scipy.stats import binomtest
    ci = binomtest(int(k), int(n)).proportion_ci(0.95, method="exact")
    lo, hi = float(ci.low), float(ci.high)
    if k / n >= level:
        return "collapsed", (lo, hi)
    return ("outside" if hi < level else "undecided"), (lo, hi)


def no_collapse(shares: dict, level: float, movable: bool | None) -> tuple[Outcome, str]:
    """The claim *trained prompts do not all collapse into the token cloud*, from per-prior counts.

    ``shares[prior] = {"sampled": (k, n), "trained": (k, n), "seeds": s}``: ``k`` of the ``n`` prompt vectors
    (all seeds pooled) inside the token Gaussian's 95% region at step 0 and at the end; ``level``: the
    collapsed level (:func:`collapsed_level`); ``movable``: whether the optimiser could move a vector one
    token-neighbour gap at this learning rate (:func:`decide.movement`; ``None``: unknown). Each prior's
    start and end are classed by :func:`inside_class`; a prior with fewer than ``protocol.MIN_SEEDS`` seeds is
    undecided. A prior's result is *fixed by its start* when it ends in the class it started in and the
    optimiser could not move it a gap (``movable`` False; unknown counts as not shown otherwise).

    - agrees: some prior ends *outside* and its end is not fixed by its start (it started elsewhere, e.g.
      vocab-sample from inside the cloud, or the optimiser could move it);
    - contradicts: every prior ends *collapsed*, none of them fixed by its start;
    - holds by construction: the only priors that end outside started outside and could not move a gap
      (the check cannot fail: no evidence);
    - not testable at this learning rate: every prior ends collapsed, some only because they started
      inside and could not move; else inconclusive.

    >>> no_collapse({"vocab-sample": {"sampled": (60, 60), "trained": (0, 60), "seeds": 3}}, 0.95, False)[0].value
    'agrees'
    >>> no_collapse({"isotropic": {"sampled": (0, 60), "trained": (0, 60), "seeds": 3}}, 0.95, False)[0].value
    'holds by construction'
    """
    if not shares:
        return Outcome.INCONCLUSIVE, "no prior at this learning rate"
    cls, parts = {}, []
    for p, d in shares.items():
        few = int(d.get("seeds", 0)) < protocol.MIN_SEEDS
        (k0, n0), (k1, n1) = d["sampled"], d["trained"]
        c0, _ = inside_class(k0, n0, level)
        c1, (lo, hi) = inside_class(k1, n1, level)
        if few:
            c0 = c1 = "undecided"
        cls[p] = (c0, c1)
        share0 = k0 / n0 if n0 else math.nan
        share1 = k1 / n1 if n1 else math.nan
        parts.append(f"{p} {100 * share0:.0f}% → {100 * share1:.0f}% (95% CI {100 * lo:.0f}-{100 * hi:.0f}%"
                     + (f", {d.get('seeds', 0)} seed{'' if d.get('seeds', 0) == 1 else 's'} < {protocol.MIN_SEEDS}" if few else "") + f"): {c1}")

    def fixed(p):
        c0, c1 = cls[p]
        return c0 == c1 and movable is not True

    out_real = [p for p, (c0, c1) in cls.items() if c1 == "outside" and not fixed(p)]
    out_built = [p for p, (c0, c1) in cls.items() if c1 == "outside" and fixed(p) and movable is False]
    collapsed = [p for p, (_, c1) in cls.items() if c1 == "collapsed"]
    reach = ("the optimiser could move a vector at least one token gap" if movable else
             "the optimiser could not move a vector one token gap" if movable is False else "movement bound unknown")
    text = (f"a prior counts as collapsed when ≥ {100 * level:.0f}% of its vectors are inside; share inside, "
            f"sampled → trained: " + "; ".join(parts) + f"; at this rate {reach}")
    if out_real:
        return Outcome.AGREES, f"{', '.join(out_real)} not collapsed (they end outside the cloud); {text}"
    if len(collapsed) == len(cls):
        if not any(fixed(p) for p in collapsed):
            return Outcome.CONTRADICTS, f"every prior collapsed; {text}"
        return ((Outcome.NOT_TESTABLE if movable is False else Outcome.INCONCLUSIVE),
                f"every prior ends collapsed, some only as they started; {text}")
    if out_built:
        return Outcome.HOLDS_BY_CONSTRUCTION, (f"only {', '.join(out_built)} end outside, where they started, and "
                                               f"could not move a token gap; {text}")
    return Outcome.INCONCLUSIVE, text


def prompt_shares(place: pd.DataFrame, n_tokens: int) -> dict:
    """Per prior, the inputs of :func:`no_collapse` from placement rows (one learning rate): the vectors
    inside the region, all runs pooled (``round(share_in_hdr * n_tokens)`` per run), at step 0 and at the end."""
    out = {}
    for p in dict.fromkeys(place["prior"]):
        d = place[place["prior"] == p]
        e = {}
        for when in ("sampled", "trained"):
            w = d[d["when"] == when]
            e[when] = (int(np.rint(w["share_in_hdr"].astype(float) * n_tokens).sum()), int(len(w) * n_tokens))
        e["seeds"] = int(d.loc[d["when"] == "trained", "seed"].nunique()) if "seed" in d else 0
        out[p] = e
    return out


RHO_AGREES = 0.7  # within-rate Spearman ρ from which the prior "decides" where the prompt ends


def posterior_follows_prior(sampled, trained, lrs, movable: dict | None = None) -> tuple[Outcome, str, dict]:
    """*The prior decides where trained prompts end*: Spearman's ρ of each run's sampled and trained median
    distance to the nearest token embedding *within each learning rate*, pooled
    (:func:`priorlib.protocol.stratified_rank_correlation`); a ρ over every run mixes the rates, and the rate
    alone sets how far a prompt travels. ``movable[lr]``: whether the optimiser could move a vector one token
    gap at that rate (False: a rate where the order is kept by construction, reported, never counted).

    - agrees: pooled ρ ≥ :data:`RHO_AGREES` and its 95% interval above 0;
    - contradicts: the interval wholly below :data:`RHO_AGREES`;
    - holds by construction: ρ ≥ 0.7 only at rates that could not move a prompt a gap; else inconclusive.

    >>> posterior_follows_prior([1, 2, 3, 4, 5] * 2, [1, 2, 3, 4, 5, 9, 8, 7, 6, 5], [1e-3] * 5 + [1e-2] * 5)[0].value
    'inconclusive'
    """
    movable = movable or {}
    lrs = [float(v) for v in lrs]
    fixed = [lr for lr in dict.fromkeys(lrs) if movable.get(lr) is False]
    keep = [i for i, lr in enumerate(lrs) if lr not in fixed]
    sampled, trained = np.asarray(sampled, float), np.asarray(trained, float)
    c = protocol.stratified_rank_correlation(sampled[keep], trained[keep], [lrs[i] for i in keep])
    every = protocol.stratified_rank_correlation(sampled, trained, lrs)
    per = "; ".join(f"lr {lr:g}: ρ = {fmt(r, 2)} ({n} runs"
                    + (", could not move a token gap: by construction" if lr in fixed else "") + ")"
                    for lr, (n, r) in every.per_stratum.items())
    num = {"rho_within_lr": c.estimate, "rho_within_lr_ci": [c.ci_low, c.ci_high],
           "rho_by_lr": {f"{lr:g}": r for lr, (n, r) in every.per_stratum.items()}}
    if not c.used:
        built = [lr for lr in fixed if np.isfinite(every.per_stratum[lr][1]) and every.per_stratum[lr][1] >= RHO_AGREES]
        outcome = Outcome.HOLDS_BY_CONSTRUCTION if built else Outcome.INCONCLUSIVE
        return outcome, f"{per}; no rate with {protocol.MIN_CORRELATION_ROWS} or more runs where prompts could move a token gap", num
    pooled = (f"pooled within rates ρ = {fmt(c.estimate, 2)}, 95% CI [{fmt(c.ci_low, 2)}, {fmt(c.ci_high, 2)}] "
              f"(agrees: ρ ≥ {RHO_AGREES:g} with the interval above 0; contradicts: the interval below {RHO_AGREES:g})")
    if c.estimate >= RHO_AGREES and c.ci_low > 0:
        outcome = Outcome.AGREES
    elif c.ci_high < RHO_AGREES:
        outcome = Outcome.CONTRADICTS
    else:
        outcome = Outcome.INCONCLUSIVE
    return outcome, f"{per}; {pooled}", num


def prior_gain(a: decide.Arm, ref: decide.Arm, measure: str = "final_val_loss") -> tuple[Outcome, str]:
    """Does prior ``a`` *fail* to improve on ``ref`` (lower ``measure`` is better)? agrees (no gain) when
    ``a`` is equivalent to ``ref`` (:func:`decide.same_quality`: TOST within the margin) or shown worse
    (``protocol.better``: the 95% CI of the difference above 0); contradicts (it improves) when it is not
    equivalent and ``better`` shows a lower value; else inconclusive. The plateau rule and the seed minimum
    apply (an arm not known to have plateaued, or under 3 seeds: inconclusive)."""
    eq = decide.same_quality(a, ref, measure)
    if eq.outcome is Outcome.AGREES:
        return Outcome.AGREES, f"equivalent ({eq.reason})"
    gain = decide._unplateaued(protocol.better(a.values, ref.values, higher_is_better=False), (a, ref))
    if gain.outcome is Outcome.AGREES:
        return Outcome.CONTRADICTS, f"improves ({gain.reason})"
    if gain.outcome is Outcome.CONTRADICTS:
        return Outcome.AGREES, f"worse ({gain.reason})"
    if gain.reason in eq.reason or eq.reason in gain.reason:  # the seed guard: said once
        return Outcome.INCONCLUSIVE, eq.reason
    guard = "not known to have plateaued: "
    if eq.reason.startswith(guard) and gain.reason.startswith(guard):  # the plateau guard: said once
        head, eq_rest = eq.reason.split("; ", 1)
        gain_rest = gain.reason.split("; ", 1)[1] if gain.reason.split("; ", 1)[0] == head else gain.reason
        return Outcome.INCONCLUSIVE, f"{head}; equivalence: {eq_rest}; gain: {gain_rest}"
    return Outcome.INCONCLUSIVE, f"equivalence: {eq.reason}; gain: {gain.reason}"


def no_prior_improves(rows: pd.DataFrame, lr: float, reference: str = REFERENCE_PRIOR,
                      measure: str = "final_val_loss") -> tuple[Outcome, list]:
    """Every other prior against ``reference`` at ``lr`` (:func:`prior_gain`); :func:`decide.every`: one that
    improves -> contradicts, all without gain -> agrees; no reference arm or no other prior -> inconclusive."""
    at = rows[np.isclose(rows["lr"].astype(float), lr)]
    priors = list(dict.fromkeys(at["prior"]))
    if reference not in priors or len(priors) < 2:
        return Outcome.INCONCLUSIVE, []
    ref = decide.arm(at, measure, reference, prior=reference)
    tests = [(p, prior_gain(decide.arm(at, measure, p, prior=p), ref, measure)) for p in priors if p != reference]
    outcome = decide.every(o for _, (o, _) in tests)
    return (Outcome.INCONCLUSIVE if not outcome.is_evidence else outcome), tests


def paper_rates_phrase(lrs) -> str:
    """``paper_rates_phrase([1e-3, 1e-3])`` -> "at the paper's rate 0.001 (of 0.0005, 0.001, 0.005)": which of
    the paper's learning rates the runs used, singular when one."""
    used = sorted({float(q) for q in PAPER_LRS if any(math.isclose(float(x), q) for x in lrs)})
    paper = ", ".join(f"{q:g}" for q in PAPER_LRS)
    if not used:
        return f"at none of the paper's rates ({paper})"
    many = len(used) > 1
    return f"at the paper's rate{'s' if many else ''} {', '.join(f'{q:g}' for q in used)} (of {paper})"


def verdicts(rows: pd.DataFrame, place: pd.DataFrame, baseline: dict, s: Settings, *,
             dim: int | None = None) -> tuple[list[Verdict], dict]:
    """The closing verdicts of notebook 02 and the numbers behind them (rules: ``margins.RULES``).

    1. *The prior decides where trained prompts end*: Spearman correlation of the sampled and trained median
       distance to the nearest token embedding within each learning rate, pooled (:func:`posterior_follows_prior`).
    2. *Prompts stay near their prior at the paper's learning rates*: the most Adam could move a
       ``dim``-vector at those rates (:func:`decide.movement`) beside the token embeddings' typical
       neighbour gap; not testable when below it, else contradicts when a run moved the gap or more and
       agrees when every run moved less, with at least 3 seeds per prior and rate (:func:`decide.stays_within`).
    3. *Final quality is the same across priors*: at the replicated learning rate, every prior's final
       validation loss is equivalent (TOST, ``margins.MARGINS``) to the first prior's.
    4. *Trained prompts do not all collapse into the token cloud*: at the replicated rate, each prior's share
       of prompt vectors (all seeds) inside the token Gaussian's 95% region (the placement rows'
       ``share_in_hdr``: the fit and radius of chapter 03's ``exclusion_density``), sampled and trained,
       against the collapsed level (:func:`collapsed_level` of ``baseline["share_in_hdr"]``), with the
       optimiser's movement bound at that rate beside the token gap as the by-construction guard
       (:func:`no_collapse`).
    5. *No prior improves prompt tuning*: at the replicated rate, each prior's final validation loss
       against vocab-sample's (:func:`no_prior_improves`).
    """
    num: dict = {}
    t = place[place["when"] == "trained"].reset_index(drop=True)
    sm = place[place["when"] == "sampled"].reset_index(drop=True)
    rho = rank_correlation(sm["median_nn_l2"], t["median_nn_l2"])
    num["rho_sampled_trained_nn_l2"] = rho  # over every run, rates mixed: shown beside, not the rule's measure
    gap = float(baseline["median_nn_l2"])
    num["vocab_median_nn_l2"] = gap
    movable = {}
    if dim is not None and gap > 0:
        for lr in dict.fromkeys(float(v) for v in t["lr"]):
            cfgs = [c for c in configs(s) if math.isclose(c.lr, lr)]
            if cfgs:
                movable[lr] = decide.movement(cfgs, dim, gap).testable
    follows, follows_why, follows_num = posterior_follows_prior(sm["median_nn_l2"], t["median_nn_l2"], t["lr"], movable)
    num.update(follows_num)
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
        seeds = decide.fewest_seeds(paper)
        num["fewest_seeds_paper_lrs"] = seeds
        stay_outcome, stay_why = decide.stays_within(paper["moved_l2"], gap, bound, seeds=seeds,
                                                     paths=paper["path_l2"] if "path_l2" in paper else None)
    lr_q = s.replicate_lr if s.replicate_lr is not None else s.learning_rates[-1]
    same, tests = same_quality_across_priors(rows, lr_q)
    at = rows[np.isclose(rows["lr"].astype(float), lr_q)]
    order = list(dict.fromkeys(at["prior"]))  # row order: the first prior is the reference (same_quality_across_priors)
    means = {p: float(v) for p, v in at.groupby("prior")["final_val_loss"].mean().reindex(order).items()}
    f1 = at.groupby("prior")["final_f1"].mean() if "final_f1" in at else pd.Series(dtype=float)
    num.update(quality_lr=lr_q, final_val_loss_by_prior=means,
               final_val_loss_range=float(max(means.values()) - min(means.values())) if means else float("nan"),
               final_val_loss_margin=margin("final_val_loss"),
               final_val_loss_tests={p: {"estimate": r.estimate, "ci": [r.ci_low, r.ci_high], "outcome": r.outcome.value}
                                     for p, r in tests},
               final_f1_by_prior=f1.to_dict(), final_f1_range=float(f1.max() - f1.min()) if len(f1) else float("nan"))
    # no-collapse: the prompts at the replicated rate against the token Gaussian's 95% region
    level = collapsed_level(baseline.get("share_in_hdr"))
    shares = prompt_shares(place[np.isclose(place["lr"].astype(float), lr_q)], s.n_tokens)
    main_cfgs = [c for c in configs(s) if math.isclose(c.lr, lr_q)]
    move = decide.movement(main_cfgs, dim, gap) if dim is not None and main_cfgs and gap > 0 else None
    collapse, collapse_why = no_collapse(shares, level, None if move is None else move.testable)
    num.update(collapsed_level=level, vocab_share_in_hdr=baseline.get("share_in_hdr"),
               movement_bound_quality_lr=None if move is None else move.bound,
               share_in_hdr_by_prior={p: {w: (d[w][0] / d[w][1] if d[w][1] else float("nan"))
                                          for w in ("sampled", "trained")} | {"vectors": d["trained"][1]}
                                      for p, d in shares.items()},
               no_collapse_outcome=collapse.value)
    gain, gain_tests = no_prior_improves(rows, lr_q)
    num["no_prior_improves_tests"] = {p: {"outcome": o.value, "reason": why} for p, (o, why) in gain_tests}
    moved_txt = ", ".join(f"{k}: {v:.3g}" for k, v in num["median_moved_l2_by_lr"].items())
    ref = order[0] if order else "?"
    out = [
        Verdict("The prior decides where trained soft prompts end up (posteriors differ by prior)",
                f"Spearman ρ between each run's sampled and trained median distance to the nearest token "
                f"embedding, within each learning rate: {follows_why}; over all {len(t)} runs, rates mixed: "
                f"ρ = {fmt(rho, 2)}", follows, claim_id="prior-decides-posterior"),
        Verdict("Prompts stay near where their prior put them at the paper's learning rates",
                f"{paper_rates_phrase(paper['lr'])}; runs: {len(paper)}): {stay_why} (the "
                f"yardstick: the token embeddings' typical neighbour gap); median movement by lr: {moved_txt}",
                stay_outcome, claim_id="prompts-stay-near-prior"),
        Verdict("Final quality is the same whichever prior starts the prompt",
                f"at lr {lr_q:g}: final validation loss {', '.join(f'{k} {v:.3f}' for k, v in means.items())}; against "
                f"{ref} (TOST, margin ±{margin('final_val_loss'):g} nats): "
                + ("; ".join(f"{p}: {r.outcome.value} ({r.reason})" for p, r in tests) or "fewer than two priors")
                + f"; F1 range {fmt(num['final_f1_range'])} points",
                same, claim_id="quality-independent-of-prior"),
        Verdict("Trained prompts do not all collapse into the token-embedding cloud",
                f"at lr {lr_q:g}, share of prompt vectors inside the token Gaussian's 95% region (the "
                f"vocabulary's own: {fmt(100 * float(baseline.get('share_in_hdr') or float('nan')), 3)}"
                f"{'%' if baseline.get('share_in_hdr') is not None else ''}): {collapse_why}",
                collapse, claim_id="no-collapse"),
        Verdict("None of the priors improves on the sampled-vocabulary init",
                f"at lr {lr_q:g}, final validation loss against {REFERENCE_PRIOR} (TOST, margin "
                f"±{margin('final_val_loss'):g} nats, or `better`): "
                + ("; ".join(f"{p}: {o.value}, {why}" for p, (o, why) in gain_tests)
                   or f"no {REFERENCE_PRIOR} arm or no other prior"),
                gain, claim_id="no-prior-improves"),
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


# --------------------------------------------------------------------------------------------- captions
def movement_caption(place: pd.DataFrame, gap: float) -> str:
    """Figure "movement against lr": what it shows and how far the prompts moved at each rate, against the
    token embeddings' neighbour gap ``gap``.

        movement_caption(place, 2.05)  # "... at lr 0.05 the median is 12.3, 6.0× the gap ..."
    """
    t = place[place["when"] == "trained"]
    moved = t.groupby("lr")["moved_l2"].median().sort_index()
    per = ", ".join(f"{v:.3g} at lr {k:g} ({v / gap:.1f}× the gap)" for k, v in moved.items())
    return (f"Median L2 distance a prompt vector moved between its prior sample and the trained prompt "
            f"(embedding units, y) against the peak learning rate (x, log scale); one line per prior, mean ± sd "
            f"over seeds where a rate has several. All priors pooled, the median movement is {per}, against a "
            f"typical neighbour gap of {gap:.3g} between token embeddings.")


def f1_caption(at: pd.DataFrame, lr: float, metric: str = "final_f1") -> str:
    """Figure "final F1 per prior": bars, seeds, and the spread of the means that the quality claim is about."""
    means = at.groupby("prior")[metric].mean()
    seeds = at.groupby("prior")["seed"].nunique()
    n = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    return (f"Final held-out SQuAD F1 (%) per prior at lr {lr:g}: bars are the mean and sd over {n} seeds, dots "
            f"single seeds. The means run from {means.min():.1f} ({means.idxmin()}) to {means.max():.1f} "
            f"({means.idxmax()}), a spread of {means.max() - means.min():.1f} points; the verdicts below decide "
            f"on the validation loss.")
