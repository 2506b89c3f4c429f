"""Pictures of notebooks 05 and 06: domain clusters per layer, prompts between two activation clouds,
and the VAE collapse sweep."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA

from priorlib.metrics.clusters import standardise  # noqa: F401 (re-exported)
from priorlib.projection import ActivationProjection
from priorlib.compendium.plots.posterior import prior_posterior, scrubber_frames

DOMAIN_NAMES = {"web": "web text (C4 stand-in)", "squad": "SQuAD", "math": "MATH"}
DOMAIN_COLOURS = {"web": "tab:blue", "squad": "tab:green", "math": "tab:orange"}


def cluster_curves(scores, *, deep_layers=(), title: str = ""):
    """Silhouette (left) and linear-probe accuracy (right) per layer, MATH vs NLP and SQuAD vs web."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    pairs = (("math_vs_nlp", "MATH vs SQuAD + web", "tab:orange"), ("squad_vs_web", "SQuAD vs web", "tab:green"))
    for key, name, c in pairs:
        a.plot(scores["layer"], scores[f"silhouette_{key}"], marker="o", ms=3, c=c, label=name)
        b.plot(scores["layer"], 100 * scores[f"probe_{key}"], marker="o", ms=3, c=c, label=name)
        b.plot(scores["layer"], 100 * scores[f"chance_{key}"], ls=":", c=c, lw=1)
    a.axhline(0.25, c="0.5", ls="--", lw=0.8)
    a.axhline(0.5, c="0.5", ls="-.", lw=0.8)
    a.text(scores["layer"].min(), 0.26, "0.25: no substantial structure below", fontsize=7, color="0.4")
    a.text(scores["layer"].min(), 0.51, "0.50: reasonable structure above", fontsize=7, color="0.4")
    for ax in (a, b):
        for layer in deep_layers:
            ax.axvspan(layer - 0.5, layer + 0.5, color="0.9", zorder=0)
        ax.set_xlabel("layer whose input is read (0 = token embeddings)")
        ax.legend(fontsize=7)
    a.set_ylabel("silhouette coefficient (−1 to 1)")
    a.set_title("cluster separation of per-text mean activations", fontsize=9)
    b.set_ylabel("linear-probe accuracy, 5-fold CV (%)")
    b.set_title("linear separability (dotted: majority-class rate)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def domain_scatter(means: dict, layers, *, variant: str = "skip_first", title: str = ""):
    """PCA (per panel, :class:`priorlib.projection.ActivationProjection`: massive rows out, z-scored
    features) of the per-text means of the three domains at the input of ``layers``."""
    doms = means["domains"]
    lab = means["domain"].numpy()
    all_layers = means["layers"].tolist()
    fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 3.5), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        x = means[variant][all_layers.index(layer)].float().numpy()
        ap = ActivationProjection(x)  # the z-scored features the cluster measure sees, massive rows out
        y, keep = ap.transform(x), ~ap.dropped
        for k, d in enumerate(doms):
            ax.scatter(*y[(lab == k) & keep].T, s=9, alpha=0.6, c=DOMAIN_COLOURS[d], label=DOMAIN_NAMES[d], linewidths=0)
        ax.set_xlabel(ap.label(0))
        ax.set_ylabel(ap.label(1))
        ax.set_title(f"input of layer {layer} ({int(ap.dropped.sum())} massive rows dropped)", fontsize=9)
    axes[0][0].legend(fontsize=7, markerscale=1.5)
    fig.suptitle((title + "\n" if title else "") + "each dimension standardised, rows with norm > 4x median dropped "
                 "(massive activations, Sun et al. 2024)", fontsize=10)
    fig.tight_layout()
    return fig


class TwoClouds:
    """One activation map (:class:`priorlib.projection.ActivationProjection`: first-token / massive rows
    dropped, each dimension standardised, then PCA) fitted on the union of one or more activation
    references, drawn in their colours. ``description`` says on the page what was done."""

    def __init__(self, refs: dict, n_show: int = 1500, seed: int = 0):
        from priorlib.projection import ActivationProjection
        g = torch.Generator().manual_seed(seed)
        self.names = list(refs)
        picked = {d: r.vectors[torch.randperm(len(r), generator=g)[:n_show]].float().numpy() for d, r in refs.items()}
        self.map = ActivationProjection(np.concatenate(list(picked.values())), seed=seed)
        cuts = np.cumsum([0] + [len(v) for v in picked.values()])
        self.clouds = {d: self.map.transform(v[~self.map.dropped[cuts[i]:cuts[i + 1]]])
                       for i, (d, v) in enumerate(picked.items())}
        self.explained = self.map.explained
        self.description = self.map.description
        self.kind = self.map.kind

    def __call__(self, v: torch.Tensor) -> np.ndarray:
        return self.map.transform(v.detach().float().numpy())

    def cloud_points(self) -> np.ndarray:
        return np.concatenate(list(self.clouds.values()))

    def draw_clouds(self, ax, label: str = ""):
        for d, c in self.clouds.items():
            ax.scatter(*c.T, s=2, alpha=0.15, linewidths=0, c=DOMAIN_COLOURS.get(d, "0.5"),
                       label=label if label and len(self.clouds) == 1 else f"{DOMAIN_NAMES.get(d, d)} activations")

    def axes_labels(self, ax):
        ax.set_xlabel(self.map.label(0))
        ax.set_ylabel(self.map.label(1))


def two_cloud_panels(proj: TwoClouds, panels, *, ncols: int = 4, size: float = 3.3, title: str = ""):
    """One panel per run: ``(title, sampled [n, d], trained [n, d])`` over both clouds."""
    return prior_posterior(proj, panels, ncols=ncols, size=size, title=title)


def two_cloud_frames(proj: TwoClouds, checkpoints, history, *, title: str):
    """Scrubber frames: the deep block over both clouds (left) and the training loss so far (right)."""
    return scrubber_frames(proj, checkpoints, history, title=title)


def placement_arrows(place, *, arm_titles: dict, yardstick=None, title: str = ""):
    """Median Mahalanobis distance to the MATH fit (x) and to the web fit (y): an arrow per run from
    the sampled to the trained deep block; the diagonal separates 'closer to MATH' (above) from
    'closer to web' (below); crosses mark each domain's own rows."""
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    arms = list(dict.fromkeys(place["arm"]))
    colours = dict(zip(arms, plt.cm.tab10.colors))
    for (arm, lr, seed), g in place.groupby(["arm", "lr", "seed"], sort=False):
        s = g[g["when"] == "sampled"].iloc[0]
        t = g[g["when"] == "trained"].iloc[0]
        ax.annotate("", xy=(t["maha_math"], t["maha_web"]), xytext=(s["maha_math"], s["maha_web"]),
                    arrowprops=dict(arrowstyle="->", color=colours[arm], lw=1.2))
        ax.scatter([s["maha_math"]], [s["maha_web"]], s=25, facecolors="none", edgecolors=colours[arm])
        ax.scatter([t["maha_math"]], [t["maha_web"]], s=18, c=[colours[arm]],
                   label=arm_titles.get(arm, arm) if seed == g["seed"].min() and lr == place["lr"].min() else None)
    if yardstick is not None:
        for _, r in yardstick.iterrows():
            ax.scatter([r["maha_math"]], [r["maha_web"]], marker="x", s=50, c="k")
            ax.annotate(f"{DOMAIN_NAMES.get(r['rows of'], r['rows of'])} rows", (r["maha_math"], r["maha_web"]),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
    lim = [0, max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lim, lim, c="0.6", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=10); ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("median Mahalanobis distance to the MATH fit (σ units)")
    ax.set_ylabel("median Mahalanobis distance to the web-text fit (σ units)")
    ax.set_title(title or "sampled (hollow) → trained (filled) deep block", fontsize=9)
    uniq = {}
    for h, lab in zip(*ax.get_legend_handles_labels()):
        uniq.setdefault(lab, h)  # one entry per arm, however many seeds and rates it has
    ax.legend(list(uniq.values()), list(uniq), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def vae_sweep_heatmaps(sweep, *, title: str = ""):
    """Active latent units (of the latent dimension) and decoded / data variance over beta x penalty."""
    betas = sorted(sweep["beta"].unique())
    vms = sorted(sweep["var_match"].unique())
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.6))
    specs = (("active_units", "active latent units (KL > 0.01 nats)", "viridis", "{:.0f}"),
             ("variance_ratio", "decoded-sample variance / data variance", "magma", "{:.2f}"),
             ("recon_mse", "reconstruction MSE (standardised units²)", "cividis", "{:.2f}"))
    for ax, (col, name, cmap, fmt) in zip(axes, specs):
        grid = np.array([[float(sweep[(sweep["beta"] == b) & (sweep["var_match"] == v)][col].iloc[0])
                          for v in vms] for b in betas])
        im = ax.imshow(grid, cmap=cmap, aspect="auto", origin="lower")
        for i in range(len(betas)):
            for j in range(len(vms)):
                cell = sweep[(sweep["beta"] == betas[i]) & (sweep["var_match"] == vms[j])].iloc[0]
                kind = cell["collapse"] if "collapse" in cell else ("collapsed" if cell["collapsed"] else "none")
                note = "" if kind == "none" else f"\n{kind}" + (" collapse" if kind != "collapsed" else "")
                ax.text(j, i, fmt.format(grid[i, j]) + note, ha="center", va="center",
                        fontsize=7, color="w" if grid[i, j] < np.nanmean(grid) else "k")
        ax.set_xticks(range(len(vms)), [f"{v:g}" for v in vms])
        ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
        ax.set_xlabel("variance-matching penalty weight γ")
        ax.set_ylabel("KL weight β")
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def kl_per_unit(kls: dict, *, title: str = ""):
    """Bar chart of KL per latent unit for a few VAEs: ``{label: [latent] tensor}``."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    n = len(kls)
    width = 0.8 / max(n, 1)
    for k, (lab, v) in enumerate(kls.items()):
        v = np.sort(np.asarray(v, dtype=float))[::-1]
        ax.bar(np.arange(len(v)) + k * width, v, width=width, label=lab)
    ax.axhline(0.01, c="0.4", ls="--", lw=0.8)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("latent unit (sorted by KL)")
    ax.set_ylabel("mean KL per unit (nats)")
    ax.set_title(title or "information per latent unit (dashed: 0.01-nat activity threshold)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

