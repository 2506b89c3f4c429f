"""The compendium's side of the verdict protocol: per-seed arms out of run tables, the plateau rule, and
the few combinations the chapters need. Every decision itself is :mod:`priorlib.protocol`'s.

    a, b = arm(rows, "final_val_loss", prior="exclusion"), arm(rows, "final_val_loss", prior="fitted-gaussian")
    same_quality(a, b).outcome          # Outcome.AGREES / CONTRADICTS / INCONCLUSIVE / UNINFORMATIVE
    faster(arm(rows, "steps_to_target", arm="copy"), arm(rows, "steps_to_target", arm="fitted-gaussian"))
    every([r.outcome for r in results]) # one claim out of several comparisons

Plateau rule: a run whose ``metrics.json`` does not say ``"plateaued": true`` is not known to have
reached its plateau, and a quality verdict on an arm with such a run is ``inconclusive``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np
import pandas as pd

from priorlib import protocol
from priorlib.compendium.margins import margin
from priorlib.protocol import MIN_SEEDS, Outcome

__all__ = ["plateaued", "Arm", "arm", "same_quality", "not_worse", "faster", "every", "some", "opposite",
           "one_cluster", "movement", "fewest_seeds", "stays_within", "cluster"]


def plateaued(metrics: dict) -> bool:
    """``plateaued(run.metrics)``: True only when the trainer wrote ``"plateaued": true`` (missing: False)."""
    return metrics.get("plateaued") is True


@dataclass
class Arm:
    """The per-seed values of one arm, and whether every one of its runs plateaued."""

    name: str
    values: np.ndarray
    plateaued: bool

    def describe(self, nd: int = 3) -> str:
        """``"2.013 ± 0.012 (n=3)"``: mean ± sd over seeds."""
        v = self.values
        sd = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
        return f"{np.mean(v):.{nd}f} ± {sd:.{nd}f} (n={len(v)})" if len(v) else "no runs"


def arm(rows: pd.DataFrame, metric: str, name: str | None = None, **where) -> Arm:
    """``arm(rows, "final_val_loss", prior="xavier", lr=5e-3)``: the rows matching ``where``, NaNs dropped.

    ``plateaued`` reads the rows' ``plateaued`` column (one per run, from ``metrics["plateaued"]``); a
    missing column or value counts as not plateaued.
    """
    keep = np.ones(len(rows), bool)
    for col, value in where.items():
        c = rows[col]
        keep &= np.isclose(c.astype(float), float(value)) if isinstance(value, float) else (c == value).to_numpy()
    part = rows[keep]
    values = part[metric].astype(float).dropna().to_numpy() if metric in part else np.array([])
    flags = part["plateaued"].tolist() if "plateaued" in part else [None] * len(part)
    label = name or ", ".join(f"{k}={v}" for k, v in where.items())
    return Arm(label, values, bool(len(flags)) and all(f is True for f in flags))


def _unplateaued(result, arms: Iterable[Arm]):
    """``result`` with an ``inconclusive`` outcome when an arm is not known to have plateaued."""
    late = [a.name for a in arms if not a.plateaued]
    if not late or result.outcome is Outcome.UNINFORMATIVE:
        return result
    return replace(result, outcome=Outcome.INCONCLUSIVE,
                   reason=f"not known to have plateaued: {', '.join(late)}; {result.reason}")


def same_quality(a: Arm, b: Arm, measure: str = "final_val_loss") -> protocol.Equivalence:
    """TOST of ``a`` against ``b`` within the stated margin of ``measure``, and the plateau rule."""
    return _unplateaued(protocol.equivalent(a.values, b.values, margin(measure)), (a, b))


def not_worse(a: Arm, b: Arm, measure: str = "final_val_loss", *, lower_is_better: bool = True) -> tuple[Outcome, str]:
    """Is ``a`` at least as good as ``b``? agrees when ``a`` is equivalent to ``b`` or better; contradicts
    when ``a`` differs by more than the margin on the worse side; else inconclusive. Plateau rule applies."""
    eq = same_quality(a, b, measure)
    if eq.outcome is Outcome.AGREES:
        return eq.outcome, eq.reason
    better = _unplateaued(protocol.better(a.values, b.values, higher_is_better=not lower_is_better), (a, b))
    if better.outcome is Outcome.AGREES:
        return Outcome.AGREES, better.reason
    worse = (eq.estimate > 0) == lower_is_better
    if eq.outcome is Outcome.CONTRADICTS and worse:
        return Outcome.CONTRADICTS, eq.reason
    return (eq.outcome if eq.outcome is not Outcome.CONTRADICTS else Outcome.INCONCLUSIVE), eq.reason


def faster(a: Arm, b: Arm) -> protocol.Difference:
    """Does ``a`` need fewer steps than ``b``? :func:`priorlib.protocol.better` on step counts."""
    return protocol.better(a.values, b.values, higher_is_better=False)


def every(outcomes: Iterable[Outcome]) -> Outcome:
    """A claim that holds only if every comparison agrees: any contradicts -> contradicts; all agree ->
    agrees; otherwise the first non-evidence outcome (inconclusive, not testable, ...)."""
    outcomes = [Outcome(o) for o in outcomes]
    if not outcomes:
        return Outcome.INCONCLUSIVE
    if Outcome.CONTRADICTS in outcomes:
        return Outcome.CONTRADICTS
    rest = [o for o in outcomes if o is not Outcome.AGREES]
    return rest[0] if rest else Outcome.AGREES


def some(outcomes: Iterable[Outcome]) -> Outcome:
    """A claim that holds if any comparison agrees: any agrees -> agrees; all contradict -> contradicts;
    otherwise inconclusive (also with no comparison at all)."""
    outcomes = [Outcome(o) for o in outcomes]
    if Outcome.AGREES in outcomes:
        return Outcome.AGREES
    if outcomes and all(o is Outcome.CONTRADICTS for o in outcomes):
        return Outcome.CONTRADICTS
    return Outcome.INCONCLUSIVE


def opposite(outcome: Outcome) -> Outcome:
    """The outcome of the opposite claim ("one cluster" from "separated"): agrees <-> contradicts."""
    swap = {Outcome.AGREES: Outcome.CONTRADICTS, Outcome.CONTRADICTS: Outcome.AGREES}
    return swap.get(Outcome(outcome), Outcome(outcome))


def one_cluster(sep: protocol.Separation, m: float | None = None) -> tuple[Outcome, str]:
    """"The two groups share one cluster", the equivalence side of :func:`cluster`: the silhouette's
    bootstrap interval wholly at or below the random-split null's quantile plus the ``silhouette`` margin
    (:func:`~priorlib.compendium.margins.margin`; ``m`` overrides it) agrees, wholly above it contradicts,
    else inconclusive. With hundreds of rows a separation of a few thousandths beats the null; that is a
    detectable difference, not a second cluster.

        one_cluster(cluster(squad, web))   # (Outcome.AGREES, "one cluster: silhouette CI [0.003, 0.006] ...")
    """
    m = margin("silhouette") if m is None else float(m)
    bound = sep.null_upper + m
    span = (f"silhouette {sep.estimate:.3f}, {sep.confidence:.0%} CI [{sep.ci_low:.3f}, {sep.ci_high:.3f}], against "
            f"the random-split null's {sep.confidence:.0%} quantile {sep.null_upper:.3f} + margin {m:g} = {bound:.3f}")
    if sep.ci_high <= bound:
        return Outcome.AGREES, f"one cluster: {span}"
    if sep.ci_low > bound:
        return Outcome.CONTRADICTS, f"two clusters: {span}"
    return Outcome.INCONCLUSIVE, f"the interval straddles the margin: {span}"


def movement(configs, dim: int, yardstick: float, *, scale: float = 1.0) -> protocol.Movement:
    """The most any of ``configs`` could move a ``dim``-vector (:func:`priorlib.protocol.movement_bound`
    over the trainer's learning-rate schedule, times ``scale``: a deep block's lr multiplier, which the
    trainer records as ``metrics["deep_lr_scale"]``), beside ``yardstick``."""
    from priorlib.trainer import lr_at
    bounds = [protocol.movement_bound([scale * lr_at(t, c) for t in range(c.steps)], dim) for c in configs]
    return protocol.movement_testable(max(bounds), yardstick)


def fewest_seeds(rows: pd.DataFrame, by=("prior", "lr")) -> int | None:
    """The fewest distinct seeds any ``by`` group of ``rows`` has (``by``: those of its columns present);
    ``None`` without a ``seed`` column, 0 for no rows.

        fewest_seeds(trained_rows)   # 1 when a prior ran one seed at some rate
    """
    if "seed" not in rows:
        return None
    if not len(rows):
        return 0
    keys = [c for c in by if c in rows]
    n = rows.groupby(keys)["seed"].nunique() if keys else pd.Series([rows["seed"].nunique()])
    return int(n.min())


def stays_within(moved: Iterable[float], yardstick: float, bound: protocol.Movement,
                 seeds: int | None = None, paths: Iterable[float] | None = None) -> tuple[Outcome, str]:
    """"Stays near its prior": not testable when ``bound`` says it could not move ``yardstick``; else
    contradicts when a run moved ``yardstick`` or more (one run is a counterexample). Agreeing needs
    evidence that the prompts could have got farther: with ``paths`` (each run's ``path_l2``, the distance
    its vectors travelled over the saved checkpoints, a lower bound), every run must have travelled at
    least ``yardstick`` while ending within it; a run whose checkpoints show a shorter path leaves the claim
    inconclusive (the optimiser's bound alone is a worst case no run comes near). It also needs at least
    :data:`~priorlib.protocol.MIN_SEEDS` seeds per arm (``seeds``: the fewest any arm has; fewer →
    inconclusive, as for every claim the protocol decides)."""
    moved = np.asarray(list(moved), float)
    if bound.outcome is Outcome.NOT_TESTABLE:
        return bound.outcome, bound.reason
    if not len(moved):
        return Outcome.INCONCLUSIVE, "no runs"
    share = float((moved < yardstick).mean())
    why = f"{100 * share:.0f}% of {len(moved)} runs moved less than {yardstick:.3g}; {bound.reason}"
    if share < 1.0:
        return Outcome.CONTRADICTS, why
    if paths is not None:
        paths = np.asarray(list(paths), float)
        far = int((paths >= yardstick).sum())
        why += (f"; {far} of {len(paths)} runs travelled at least {yardstick:.3g} over their checkpoints "
                f"(path median {np.median(paths):.3g})")
        if far < len(paths):
            return Outcome.INCONCLUSIVE, (why + ": a run whose checkpoints do not show it travelling the yardstick "
                                          "gives no evidence that it could have ended past it")
    if seeds is not None and seeds < MIN_SEEDS:
        return Outcome.INCONCLUSIVE, (why + f"; an arm has {seeds} seed{'s' if seeds != 1 else ''} (at least "
                                      f"{MIN_SEEDS} are needed)")
    return Outcome.AGREES, why


def cluster(x, y, *, seed: int = 0, n: int = 400) -> protocol.Separation:
    """:func:`priorlib.protocol.separation` of the rows of ``x`` against ``y``, at most ``n`` of each (drawn
    with ``seed``; the bootstrap is quadratic in the rows)."""
    rng = np.random.default_rng(seed)
    x, y = (np.asarray(v.detach().cpu().float().numpy() if hasattr(v, "detach") else v, np.float64) for v in (x, y))
    x = x[rng.choice(len(x), min(n, len(x)), replace=False)]
    y = y[rng.choice(len(y), min(n, len(y)), replace=False)]
    return protocol.separation(x, y, seed=seed)
