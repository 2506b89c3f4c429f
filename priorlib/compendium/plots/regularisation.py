"""Figures of notebook 07: where each regulariser leaves the trained prompt against how well the
prompt works (the trade-off curves), and how each regulariser's own target measure responds to
its weight. Inputs are the tables of chapter ``07_regularisation`` (``curves``: means per
regulariser and weight, weight 0 = the unregularised baseline; ``table``: one row per run)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from priorlib.regularisers import REGULARISERS

LABELS = {  # axis labels with units
    "median_mahalanobis": "median Mahalanobis distance to the\ntoken-embedding Gaussian (whitened units)",
    "median_nn_l2": "median L2 to the nearest token\nembedding (embedding units)",
    "median_nn_cos": "median cosine distance to the\nnearest token (1 − cos)",
    "moved_l2": "median L2 moved from the\nprior sample (embedding units)",
    "share_in_hdr": "share of vectors inside the\nGaussian's 95% region",
    "median_norm": "median row norm (embedding units)",
    "final_val_loss": "final validation loss (nats/token)",
    "final_f1": "final F1 (%)",
    "final_exact_match": "final exact match (%)",
}
NAMES = {r.name: r.short for r in REGULARISERS.values()}
REF_LINES = {  # kind of vertical reference line -> (colour, line style, legend label)
    "radius": ("k", "--", "95% radius of the token-embedding Gaussian"),
    "gap": ("0.35", "-.", "token embeddings' own median neighbour gap"),
    "prior": ("0.55", ":", "prior sample (median over runs)"),
}
COLORS = {"prior_l2": "tab:orange", "mahalanobis": "tab:green", "mahalanobis_hinge": "tab:purple",
          "nearest_token": "tab:red", "weight_decay": "tab:brown"}


def _band(ax, values, label: str):
    """A grey band over the range of ``values`` (a line when they coincide, e.g. a single seed)."""
    lo, hi = float(values.min()), float(values.max())
    if hi > lo:
        ax.axhspan(lo, hi, color="0.85", alpha=0.7, lw=0, label=label)
    else:
        ax.axhline(lo, c="0.75", lw=3, alpha=0.7, label=label)


def _baseline(ax, table, x: str, y: str):
    """Baseline seeds (grey crosses) and the band between their lowest and highest ``y``."""
    b = table[table["regulariser"] == "none"]
    _band(ax, b[y], label=f"unregularised, {len(b)} seed{'s' if len(b) != 1 else ''} (band: their range)")
    ax.scatter(b[x], b[y], marker="x", c="0.3", s=28, zorder=3)


def tradeoff(curves, table, *, measures=("median_mahalanobis", "median_nn_l2", "median_nn_cos", "moved_l2"),
             qualities=("final_val_loss", "final_f1"), refs: dict | None = None, title: str = ""):
    """Rows: quality measures; columns: divergence measures. One line per regulariser through its
    weights (annotated), starting at the baseline mean (weight 0); ``refs``: ``{measure: [(x, kind)]}``
    vertical reference lines, ``kind`` one of ``REF_LINES`` (the 95% radius, the tokens' own
    neighbour gap, the prior sample's median)."""
    fig, axes = plt.subplots(len(qualities), len(measures), figsize=(3.9 * len(measures), 3.3 * len(qualities)),
                             squeeze=False, sharey="row")
    for i, q in enumerate(qualities):
        for j, m in enumerate(measures):
            ax = axes[i, j]
            _baseline(ax, table, m, q)
            for name, c in curves.groupby("regulariser", sort=False):
                c = c.sort_values("weight")
                ax.plot(c[m], c[q], "-o", c=COLORS.get(name), ms=4, lw=1.2, label=NAMES.get(name, name))
                if i == 0:  # weights once per column, on the top row
                    for _, r in c[c["weight"] > 0].iterrows():
                        ax.annotate(f"{r['weight']:g}", (r[m], r[q]), fontsize=6, color=COLORS.get(name),
                                    xytext=(3, 3), textcoords="offset points")
            for x, kind in (refs or {}).get(m, []):
                color, ls, lab = REF_LINES[kind]
                ax.axvline(x, c=color, ls=ls, lw=0.8, label=lab)
            ax.set_xlabel(LABELS.get(m, m), fontsize=8)
            if j == 0:
                ax.set_ylabel(LABELS.get(q, q), fontsize=8)
            ax.tick_params(labelsize=7)
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(5, len(handles)), fontsize=7,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title or "Where the prompts end (x) against how well they work (y); numbers: weights", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def tradeoff_figures(curves, table, *, measures=("median_mahalanobis", "median_nn_l2", "median_nn_cos", "moved_l2"),
                     qualities=("final_val_loss", "final_f1"), refs: dict | None = None, title: str = "",
                     per_figure: int = 2) -> list:
    """The trade-off grid of :func:`tradeoff` split into readable figures: one per quality measure and
    ``per_figure`` divergence measures, as ``[(fig, quality, measures)]``."""
    out = []
    for q in qualities:
        for k in range(0, len(measures), per_figure):
            ms = tuple(measures[k:k + per_figure])
            fig = tradeoff(curves, table, measures=ms, qualities=(q,), refs=refs,
                           title=f"{title}\n{LABELS.get(q, q)} against {' and '.join(LABELS.get(m, m) for m in ms)}")
            fig.set_size_inches(5.6 * len(ms), 4.6)
            for ax in fig.axes:
                ax.xaxis.label.set_size(9); ax.yaxis.label.set_size(9); ax.tick_params(labelsize=8)
            fig.tight_layout(rect=(0, 0.1, 1, 1))
            out.append((fig, q, ms))
    return out


def divergence_vs_weight(table, summary, *, title: str = ""):
    """One panel per regulariser: its target measure against its weight (log axis), seed-0 runs as
    points, the baseline's seed range as a grey band (weight 0 has no place on a log axis)."""
    names = list(summary["regulariser"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.1), squeeze=False)
    for ax, (_, s) in zip(axes[0], summary.iterrows()):
        name, m = s["regulariser"], s["target"]
        b = table[table["regulariser"] == "none"][m]
        _band(ax, b, label="unregularised (seed range)")
        ax.axhline(float(b.mean()), c="0.4", lw=0.8)
        part = table[table["regulariser"] == name].sort_values("weight")
        ax.plot(part["weight"], part[m], "-o", c=COLORS.get(name), ms=4, label=NAMES.get(name, name))
        sampled = f"sampled_{m}"
        if sampled in table:
            ax.axhline(float(table[sampled].median()), c="k", ls=":", lw=0.8, label="prior sample (median over runs)")
        ax.set_xscale("log")
        ax.set_xlabel(f"weight of {NAMES.get(name, name)}", fontsize=8)
        ax.set_ylabel(LABELS.get(m, m), fontsize=8)
        rho = s["rho"]
        ax.set_title(f"{NAMES.get(name, name)}: ρ = {rho:.2f}" if np.isfinite(rho) else NAMES.get(name, name),
                     fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
