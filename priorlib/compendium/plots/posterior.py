"""Prior vs posterior pictures: the pretrained cloud (blue), sampled (hollow red) and trained (red)
prompts on one fixed 2-D projection, and frames for the checkpoint scrubber."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from sklearn.decomposition import PCA


class Projection:
    """A PCA fitted once on the reference, so every picture of a notebook shares the same axes."""

    def __init__(self, reference_vectors: torch.Tensor, n_fit: int = 20000, seed: int = 0):
        x = reference_vectors.float().numpy()
        rng = np.random.default_rng(seed)
        self.fit_rows = x[rng.choice(len(x), min(n_fit, len(x)), replace=False)]
        self.pca = PCA(n_components=2, random_state=seed).fit(self.fit_rows)
        self.cloud = self.pca.transform(self.fit_rows[: min(5000, len(self.fit_rows))])
        self.explained = self.pca.explained_variance_ratio_

    def __call__(self, v: torch.Tensor) -> np.ndarray:
        return self.pca.transform(v.detach().float().reshape(-1, self.pca.n_features_in_).numpy())

    def axes_labels(self, ax):
        ax.set_xlabel(f"PC1 ({100 * self.explained[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * self.explained[1]:.1f}% of variance)")

    def draw_clouds(self, ax, label: str):
        ax.scatter(*self.cloud.T, s=2, c="tab:blue", alpha=0.15, linewidths=0, label=label)

    def cloud_points(self) -> np.ndarray:
        return self.cloud


def prior_posterior(proj, panels: list[tuple[str, torch.Tensor, torch.Tensor]], *,
                    reference_name: str = "", ncols: int = 4, size: float = 3.2, title: str = ""):
    """One panel per run: ``(title, sampled [n, d], trained [n, d])`` over the reference cloud(s).

    ``proj`` is any projection with ``__call__``, ``draw_clouds(ax, label)`` and ``axes_labels(ax)``
    (:class:`Projection`, or :class:`priorlib.compendium.plots.domains.TwoClouds` for two domains)."""
    n = len(panels)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False,
                             sharex=True, sharey=True)
    for ax, (panel_title, sampled, trained) in zip(axes.flat, panels):
        proj.draw_clouds(ax, reference_name)
        s, t = proj(sampled), proj(trained)
        ax.scatter(*s.T, s=22, facecolors="none", edgecolors="tab:red", label="sampled (prior)")
        ax.scatter(*t.T, s=14, c="tab:red", label="trained (posterior)")
        for a, b in zip(s, t):
            ax.plot([a[0], b[0]], [a[1], b[1]], c="tab:red", lw=0.4, alpha=0.5)
        ax.set_title(panel_title, fontsize=9)
        proj.axes_labels(ax)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="best", markerscale=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def scrubber_frames(proj, checkpoints: list[tuple[int, torch.Tensor]], history, *,
                    reference_name: str = "", title: str):
    """One figure per checkpoint: prompts on the projection (left) and the loss curve so far (right)."""
    frames = []
    start = proj(checkpoints[0][1])
    allp = np.concatenate([proj(t) for _, t in checkpoints] + [proj.cloud_points()])
    lo, hi = allp.min(0), allp.max(0)
    pad = 0.03 * (hi - lo)
    for step, tensor in checkpoints:
        fig, (a, b) = plt.subplots(1, 2, figsize=(8.4, 3.4), gridspec_kw={"width_ratios": [1.1, 1]})
        proj.draw_clouds(a, reference_name)
        a.scatter(*start.T, s=22, facecolors="none", edgecolors="tab:red", label="step 0 (prior)")
        a.scatter(*proj(tensor).T, s=14, c="tab:red", label=f"step {step}")
        a.set_xlim(lo[0] - pad[0], hi[0] + pad[0]); a.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        proj.axes_labels(a)
        a.legend(fontsize=7, loc="best", markerscale=2)
        a.set_title(f"{title}: prompts at step {step}", fontsize=9)
        h = history[history["step"] <= step] if len(history) else history
        if len(history):
            b.plot(history["step"], history["loss"], c="0.85", lw=1)
        if len(h):
            b.plot(h["step"], h["loss"], c="tab:red", lw=1.2)
        b.set_xlabel("training step"); b.set_ylabel("answer loss (nats/token)")
        b.set_title("training loss", fontsize=9)
        fig.tight_layout()
        frames.append(fig)
    return frames


def metric_bars(rows, x: str, y: str, hue: str | None = None, *, ylabel: str, title: str):
    """Bar chart with one point per seed on top (mean and spread visible)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    sns.barplot(data=rows, x=x, y=y, hue=hue, ax=ax, errorbar="sd", alpha=0.8)
    sns.stripplot(data=rows, x=x, y=y, hue=hue, ax=ax, dodge=hue is not None, color="k", size=3, legend=False)
    ax.set_ylabel(ylabel); ax.set_xlabel(x); ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


def loss_curves(runs, *, label_fn, title: str, smooth: int = 5):
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for r in runs:
        h = r.history()
        ax.plot(h["step"], h["loss"].rolling(smooth, min_periods=1).mean(), lw=1, label=label_fn(r.config))
    ax.set_xlabel("training step"); ax.set_ylabel(f"answer loss, {smooth}-step mean (nats/token)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
