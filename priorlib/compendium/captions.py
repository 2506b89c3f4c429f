"""Captions of the figures every chapter draws the same way: training-loss curves and learning curves.

    from priorlib.compendium import captions
    show(pp.loss_curves(runs, ...), caption=captions.training_loss(runs, "at lr 0.05"))
    show(tp.val_curves(runs, ..., target=t), caption=captions.learning_curve(runs, target=t))

Each states what is plotted, in which unit, and the numbers a reader looks for: where the curves end, and
how many runs stopped at the step cap rather than at the plateau rule (:func:`priorlib.trainer.plateau_reached`).
"""
from __future__ import annotations


def capped(runs) -> str:
    """``"2 of 3 runs stopped at the step cap without reaching the plateau rule"``."""
    from priorlib.compendium.decide import plateaued
    capped = sum(not plateaued(r.metrics) for r in runs)
    return f"{capped} of {len(runs)} runs stopped at the step cap without reaching the plateau rule"


def training_loss(runs, where: str = "", smooth: int = 5) -> str:
    """The training-loss figure (``smooth``-step running mean per run)."""
    if not runs:
        raise ValueError("training_loss: no runs")
    finals = [float(r.history()["loss"].rolling(smooth, min_periods=1).mean().iloc[-1]) for r in runs]
    where = f" {where}" if where else ""
    return (f"Training answer loss ({smooth}-step running mean, nats per answer token) against the training step, "
            f"one curve per run{where} (colour: prior; line style: the other factor). The curves end between "
            f"{min(finals):.3f} and {max(finals):.3f}; {capped(runs)}.")


def learning_curve(runs, target: float | None = None, where: str = "") -> str:
    """The learning-curve figure: the held-out loss the plateau rule reads, at every evaluation."""
    if not runs:
        raise ValueError("learning_curve: no runs")
    from priorlib.compendium.plots.training import curve_questions
    ends = [float(r.evals().sort_values("step")["plateau_loss"].iloc[-1]) for r in runs]
    where = f" {where}" if where else ""
    text = (f"Held-out answer loss (nats per answer token) on the first {curve_questions([r.config for r in runs])} "
            f"held-out questions at every evaluation, one line per run{where}; the plateau rule reads this curve. "
            f"The last evaluations lie between {min(ends):.3f} and {max(ends):.3f}; {capped(runs)}.")
    if target is not None:
        reached = sum(min(r.evals()["plateau_loss"]) <= target for r in runs)
        text += f" Dashed: the validation-loss target {target:.3f}, reached by {reached} of {len(runs)} runs."
    return text
