"""Figures of notebook 08 (posterior as prior): loss curves per arm (mean over seeds, with the seed range
as a band) and per-seed dot plots of steps-to-target and final quality."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _colours(arms) -> dict:
    cmap = plt.get_cmap("tab10")
    return {a: cmap(i % 10) for i, a in enumerate(arms)}


def arm_curves(curves, value: str, *, ylabel: str, title: str, target: float | None = None,
               target_label: str = "target", arms=None):
    """One line per arm: the mean of ``value`` over seeds at each step, the min–max over seeds as a band.

    ``curves``: a long table with columns ``arm, seed, step`` and ``value`` (e.g. ``s08.train_curves``).
    """
    arms = list(arms) if arms is not None else list(dict.fromkeys(curves["arm"]))
    colour = _colours(arms)
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for arm in arms:
        g = curves[curves["arm"] == arm].groupby("step")[value]
        mean, lo, hi = g.mean(), g.min(), g.max()
        n = int(curves.loc[curves["arm"] == arm, "seed"].nunique())
        ax.plot(mean.index, mean.to_numpy(), lw=1.4, c=colour[arm], label=f"{arm} ({n} seed{'s' * (n != 1)})")
        ax.fill_between(mean.index, lo.to_numpy(), hi.to_numpy(), color=colour[arm], alpha=0.15, lw=0)
    if target is not None:
        ax.axhline(target, c="0.3", ls="--", lw=0.8, label=f"{target_label} {target:.3f}")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def seed_dots(rows, panels: list[tuple[str, str]], *, title: str, arms=None):
    """One panel per ``(column, axis label)``: a dot per seed for each arm and a bar at the seeds' mean.

    ``rows``: one row per run with columns ``arm``, ``seed`` and the panel columns.
    """
    arms = list(arms) if arms is not None else list(dict.fromkeys(rows["arm"]))
    colour = _colours(arms)
    seeds = sorted(rows["seed"].unique())
    markers = dict(zip(seeds, "osD^v<>ph*"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (col, label) in zip(axes[0], panels):
        for i, arm in enumerate(arms):
            part = rows[rows["arm"] == arm]
            jitter = np.linspace(-0.12, 0.12, max(len(seeds), 1))
            for j, seed in enumerate(seeds):
                v = part.loc[part["seed"] == seed, col].astype(float)
                if len(v):
                    ax.scatter(i + jitter[j], float(v.iloc[0]), s=26, c=[colour[arm]], marker=markers[seed],
                               edgecolors="k", linewidths=0.4, label=f"seed {seed}" if i == 0 else None)
            m = part[col].astype(float).mean()
            if np.isfinite(m):
                ax.hlines(m, i - 0.28, i + 0.28, colors="k", lw=1.2)
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels(arms, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("prior (arm)")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, title="marker", title_fontsize=7)
    fig.suptitle(title + " (black bar: mean over seeds)", fontsize=10)
    fig.tight_layout()
    return fig
