"""Figures of notebooks 02-04: movement against learning rate, validation-loss curves, the
exclusion prior's distance histogram and activation clouds of two text domains."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def movement_vs_lr(placement, *, title: str):
    """Median L2 distance each prompt vector moved (prior sample -> trained), per prior, against lr."""
    t = placement[placement["when"] == "trained"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    sns.lineplot(data=t, x="lr", y="moved_l2", hue="prior", marker="o", errorbar="sd", ax=ax)
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate (AdamW)")
    ax.set_ylabel("median |trained − sampled| (L2, embedding units)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # off the curves
    fig.tight_layout()
    return fig


def curve_questions(configs) -> str:
    """How many held-out questions the learning curve (``plateau_loss``) averages over, from the runs'
    configs: the first ``min(plateau_eval_size, eval_size)`` of the held-out set (``"64"``, or ``"32–64"``
    when the runs differ)."""
    ks = sorted({min(int(c.plateau_eval_size), int(c.eval_size)) for c in configs})
    return f"{ks[0]}" if len(ks) == 1 else f"{ks[0]}–{ks[-1]}"


def val_curves(runs, *, label_fn, title: str, target: float | None = None):
    """The learning curve (``plateau_loss``: validation loss on the held-out set's first questions, the
    series the plateau rule reads) at every evaluation step, one line per run: colour per prior (run
    group), line style and marker per learning rate / seed (:func:`~.styles.run_factors`)."""
    from priorlib.compendium.plots.styles import run_factors, series_styles
    configs = [r.config for r in runs]
    groups, variants, legend_title = run_factors(configs, label_fn)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for r, look in zip(runs, series_styles(groups, variants)):
        e = r.evals().sort_values("step")
        ax.plot(e["step"], e["plateau_loss"], lw=1, ms=4, label=label_fn(r.config), **look)
    if target is not None:
        ax.axhline(target, c="0.4", ls="--", lw=0.8, label=f"target {target:.3f}")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"held-out answer loss (nats per answer token),\nfirst {curve_questions(configs)} held-out questions",
                  fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,  # off the curves
              title=legend_title or None, title_fontsize=7)
    fig.tight_layout()
    return fig


def distance_histogram(distances: dict, *, radius: float, title: str, xlabel: str = "Mahalanobis distance"):
    """Overlaid density histograms of ``{name: distances}``, with the 95% region's radius marked."""
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    hi = max(float(np.quantile(v, 0.999)) for v in distances.values())
    bins = np.linspace(0, hi * 1.05, 120)
    for (name, v), color in zip(distances.items(), ["tab:blue", "tab:red", "tab:green", "tab:purple"]):
        ax.hist(v, bins=bins, density=True, alpha=0.45, color=color, label=f"{name} (n={len(v):,})")
    ax.axvline(radius, c="k", ls="--", lw=0.8, label=f"95% region of the fit (r={radius:.1f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density (per unit distance)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # off the curves
    fig.tight_layout()
    return fig


def domain_clouds(proj, clouds: dict, *, title: str, extra: dict | None = None, n: int = 3000, seed: int = 0):
    """Rows of each domain (``{name: [N, d]}``) on the fixed projection; ``extra`` marks prompt sets
    (``{name: (vectors, marker)}``)."""
    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(5.4, 4.2))
    for (name, x), color in zip(clouds.items(), ["tab:blue", "tab:orange", "tab:green"]):
        x = x[rng.choice(len(x), min(n, len(x)), replace=False)]
        ax.scatter(*proj(x).T, s=2, alpha=0.25, c=color, linewidths=0, label=name)
    for name, (v, marker) in (extra or {}).items():
        ax.scatter(*proj(v).T, s=22, marker=marker, c="tab:red" if "trained" in name else "none",
                   edgecolors="tab:red", label=name)
    proj.axes_labels(ax)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    return fig
