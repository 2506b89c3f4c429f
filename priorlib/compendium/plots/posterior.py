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
    """One 2-D map fitted once, so every picture of a notebook shares the same axes.

    Without ``points``: a PCA fitted on the reference rows. With ``points`` (every prompt vector the
    notebook draws, e.g. all sampled and trained prompts): :class:`priorlib.projection.JointWhitenedPCA`,
    whitened by the reference covariance and fitted on reference and points together, so a prompt far
    from the cloud by Mahalanobis distance is drawn outside it. Either way the axes state their share
    of variance (``explained``).
    """

    def __init__(self, reference_vectors: torch.Tensor, n_fit: int = 20000, seed: int = 0, points=None):
        x = reference_vectors.float().numpy()
        rng = np.random.default_rng(seed)
        self.fit_rows = x[rng.choice(len(x), min(n_fit, len(x)), replace=False)]
        if points is None:
            self.pca = PCA(n_components=2, random_state=seed).fit(self.fit_rows)
            self._map, self.kind = self.pca.transform, "PCA of the reference rows"
            self.explained = self.pca.explained_variance_ratio_
            self._labels = [f"PC{k + 1} ({100 * self.explained[k]:.1f}% of variance)" for k in range(2)]
        else:
            from priorlib.projection import JointWhitenedPCA
            pts = torch.as_tensor(points).detach().float().reshape(-1, x.shape[1]).numpy() if not isinstance(
                points, np.ndarray) else points.reshape(-1, x.shape[1])
            j = JointWhitenedPCA(self.fit_rows, pts)
            self._map, self.kind, self.explained = j.transform, j.kind, j.explained
            self._labels = [j.label(0), j.label(1)]
        self.dim = x.shape[1]
        self.cloud = self._map(self.fit_rows[: min(5000, len(self.fit_rows))])

    def __call__(self, v) -> np.ndarray:
        v = v.detach().float().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        return self._map(v.reshape(-1, self.dim))

    def axes_labels(self, ax):
        ax.set_xlabel(self._labels[0])
        ax.set_ylabel(self._labels[1])

    def draw_clouds(self, ax, label: str):
        ax.scatter(*self.cloud.T, s=2, c="tab:blue", alpha=0.15, linewidths=0, label=label)

    def cloud_points(self) -> np.ndarray:
        return self.cloud


def token_distances(reference, n: int = 1024, seed: int = 0) -> dict:
    """The reference rows' own distances, for comparison with prompts: Mahalanobis under the reference's
    Gaussian and L2 to the nearest *other* row, for ``n`` seeded rows (numpy arrays)."""
    from priorlib.metrics.placement import nearest_neighbours
    sub = torch.randperm(len(reference), generator=torch.Generator().manual_seed(seed))[:n]
    nn, _ = nearest_neighbours(reference.vectors[sub], reference.vectors, k=1, exclude=sub)
    return {"mahalanobis": reference.fit().mahalanobis(reference.vectors[sub]).numpy(), "nn_l2": nn[:, 0].numpy()}


def prompt_distances(reference, groups: dict) -> dict:
    """``{label: {"mahalanobis": [n], "nn_l2": [n]}}`` for each group of prompt vectors ``[n, d]``."""
    from priorlib.metrics.placement import placement_metrics
    out = {}
    for name, v in groups.items():
        m = placement_metrics(torch.as_tensor(v).reshape(-1, reference.dim), reference)
        out[name] = {"mahalanobis": m["mahalanobis"].numpy(), "nn_l2": m["nn_l2"].numpy()}
    return out


def distance_panels(tokens: dict, prompts: dict, *, reference_name: str = "token embeddings", title: str = ""):
    """What a placement claim is about, beside the projection: per quantity (Mahalanobis distance under
    the reference's Gaussian; L2 to the nearest reference row), the ECDF of the reference rows' own values
    and one rug of ticks per prompt group (each tick one prompt vector, with the group's median marked)."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.4 + 0.18 * len(prompts)))
    colours = dict(zip(prompts, sns.color_palette("tab10", len(prompts))))
    for ax, key, xl in ((axes[0], "mahalanobis", "Mahalanobis distance to the fitted Gaussian (sd units)"),
                        (axes[1], "nn_l2", "L2 distance to the nearest row (embedding units)")):
        t = np.sort(tokens[key])
        ax.step(t, np.arange(1, len(t) + 1) / len(t), where="post", c="k", lw=1.6,
                label=f"{reference_name} (n={len(t)}), ECDF")
        for k, (name, d) in enumerate(prompts.items()):
            y = -0.06 * (k + 1)
            ax.scatter(d[key], np.full(len(d[key]), y), marker="|", s=60, color=colours[name], label=name)
            ax.scatter([np.median(d[key])], [y], marker="D", s=28, color=colours[name], edgecolor="k", zorder=3)
        ax.axhline(0, c="0.5", lw=0.6)
        ax.set_xlabel(xl)
        ax.set_ylabel("share of reference rows ≤ x (ECDF)")
        ax.set_ylim(-0.06 * (len(prompts) + 1.5), 1.04)
    axes[0].set_title("distance to the cloud: rows (line) vs prompts (ticks, ◆ median)", fontsize=9)
    axes[1].set_title("nearest-row distance: rows (line) vs prompts (ticks)", fontsize=9)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def beyond_tokens(tokens: dict, prompts: dict, key: str = "mahalanobis") -> dict:
    """Per prompt group, the share of its vectors farther than every sampled reference row (``key``)."""
    top = float(np.max(tokens[key]))
    return {name: float(np.mean(d[key] > top)) for name, d in prompts.items()}


def tsne_map(proj, reference_vectors: torch.Tensor, panels, *, n_cloud: int = 1500, max_iter: int = 500,
             seed: int = 0, reference_name: str = "token embeddings"):
    """The paper's kind of picture, labelled as qualitative: one t-SNE of ``n_cloud`` reference rows and
    every panel's sampled and trained prompts together (distances in a t-SNE are not preserved)."""
    from priorlib.projection import tsne
    g = torch.Generator().manual_seed(seed)
    cloud = reference_vectors[torch.randperm(len(reference_vectors), generator=g)[:n_cloud]].float()
    blocks = [(t, s.detach().float().reshape(-1, cloud.shape[1]), e.detach().float().reshape(-1, cloud.shape[1]))
              for t, s, e in panels]
    x = torch.cat([cloud] + [torch.cat([s, e]) for _, s, e in blocks]).numpy()
    xy = tsne(x, perplexity=30, seed=seed, max_iter=max_iter, name="tsne-prompts")
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    ax.scatter(*xy[:n_cloud].T, s=3, c="0.6", alpha=0.3, linewidths=0, label=reference_name)
    colours = sns.color_palette("tab10", len(blocks))
    i = n_cloud
    for (t, s, e), c in zip(blocks, colours):
        a, b = xy[i:i + len(s)], xy[i + len(s):i + len(s) + len(e)]
        i += len(s) + len(e)
        ax.scatter(*a.T, s=22, facecolors="none", edgecolors=[c])
        ax.scatter(*b.T, s=14, color=c, label=t)
    ax.set_xlabel("t-SNE 1 (arbitrary units)")
    ax.set_ylabel("t-SNE 2 (arbitrary units)")
    ax.set_title("t-SNE, qualitative only (distances not preserved): hollow sampled, filled trained", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


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
    for i, (ax, (panel_title, sampled, trained)) in enumerate(zip(axes.flat, panels)):
        proj.draw_clouds(ax, reference_name)
        s, t = proj(sampled), proj(trained)
        ax.scatter(*s.T, s=22, facecolors="none", edgecolors="tab:red", label="sampled (prior)")
        ax.scatter(*t.T, s=14, c="tab:red", label="trained (posterior)")
        for a, b in zip(s, t):
            ax.plot([a[0], b[0]], [a[1], b[1]], c="tab:red", lw=0.4, alpha=0.5)
        ax.set_title(panel_title, fontsize=9)
        proj.axes_labels(ax)  # shared axes: named once, on the outer panels (long labels overlapped neighbours)
        if i + ncols < n:
            ax.set_xlabel("")
        if i % ncols:
            ax.set_ylabel("")
        ax.xaxis.label.set_fontsize(8)
        ax.yaxis.label.set_fontsize(8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, fontsize=7, markerscale=2, loc="upper center", ncols=len(labels),
               bbox_to_anchor=(0.5, 0.0), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
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
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # off the curves
    fig.tight_layout()
    return fig
