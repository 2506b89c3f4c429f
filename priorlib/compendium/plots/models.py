"""Two models side by side (notebook 09): where trained prompts end per prior, final quality per prior,
and task-cluster separation over depth."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def _panels(n: int, width: float = 4.4, height: float = 3.6, sharey: bool = False):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, sharey=sharey)
    return fig, list(axes[0])


LINTHRESH = 0.1  # the symlog axis is linear below this many neighbour gaps, so a distance of 0 is drawn


def posterior_position(pos: pd.DataFrame, *, title: str):
    """Per model: each run's median distance to the nearest token embedding, sampled (hollow) and
    trained (filled), in units of that model's typical neighbour gap between token embeddings."""
    models = list(dict.fromkeys(pos["model"]))
    fig, axes = _panels(len(models), sharey=True)
    for ax, m in zip(axes, models):
        d = pos[pos["model"] == m]
        priors = list(dict.fromkeys(d["prior"]))
        x = {p: i for i, p in enumerate(priors)}
        for when, style in (("sampled", dict(facecolors="none", edgecolors="tab:red", s=36)),
                            ("trained", dict(c="tab:red", s=18))):
            dd = d[d["when"] == when]
            jitter = (dd["seed"].to_numpy() - dd["seed"].mean()) * 0.08
            ax.scatter(dd["prior"].map(x) + jitter + (0.12 if when == "trained" else -0.12), dd["nn_l2_in_gaps"],
                       label=f"{when} ({'prior' if when == 'sampled' else 'posterior'})", **style)
        ax.axhline(1.0, color="0.4", lw=0.8, ls="--", label="one neighbour gap")
        ax.set_xticks(range(len(priors)), priors, rotation=20)
        ax.set_yscale("symlog", linthresh=LINTHRESH)  # log above 0.1 gaps, linear below: vocab-sample's 0 stays
        ax.axhspan(0, LINTHRESH, color="0.93", zorder=0)
        ax.set_xlabel("prior")
        ax.set_title(m, fontsize=10)
    axes[0].set_ylabel("median distance to nearest token (× the model's\nneighbour gap; log, linear below 0.1: grey)")
    axes[0].set_ylim(bottom=0)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def quality_by_prior(rows: pd.DataFrame, *, metric: str, ylabel: str, title: str):
    """Per model: the metric per prior (bar: mean ± sd over seeds; dots: seeds)."""
    models = list(dict.fromkeys(rows["model"]))
    fig, axes = _panels(len(models))
    for ax, m in zip(axes, models):
        d = rows[rows["model"] == m]
        sns.barplot(data=d, x="prior", y=metric, ax=ax, errorbar="sd", alpha=0.8, color="tab:blue")
        sns.stripplot(data=d, x="prior", y=metric, ax=ax, color="k", size=3)
        ax.set_xlabel("prior")
        ax.set_ylabel(ylabel)
        ax.set_title(m, fontsize=10)
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def clusters_over_depth(cl: pd.DataFrame, *, title: str):
    """Silhouette of MATH vs NLP and of SQuAD vs web text per layer, depth as a share of each model's layers."""
    fig, axes = _panels(2, width=4.8, sharey=True)
    for ax, (col, name) in zip(axes, (("silhouette_math_vs_nlp", "MATH vs NLP (web + SQuAD)"),
                                      ("silhouette_squad_vs_web", "SQuAD vs web text"))):
        for m, d in cl.groupby("model", sort=False):
            ax.plot(d["relative_depth"], d[col], "o-", ms=3, label=m)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.axhline(0.25, color="0.5", lw=0.8, ls=":", label="0.25: weak structure")
        ax.set_xlabel("depth (0 = token embeddings, 1 = last layer)")
        ax.set_title(name, fontsize=10)
    axes[0].set_ylabel("silhouette (unitless)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
