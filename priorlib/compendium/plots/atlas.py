"""Figures of notebook 01 (the activation atlas). Each helper takes the dict a ``questionN`` of chapter ``01_proof_of_concept``
returned and gives back a ``matplotlib.figure.Figure`` (not registered with pyplot, so a notebook shows it
once, where it calls ``display``). Every axis names its quantity and unit; every figure has a title.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["token_trajectories", "layer_steps", "squad_vs_web", "unimodality", "task_clusters", "save"]

_PATH_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown")
_ROLE_COLOURS = {"context": "tab:blue", "answer": "tab:red", "question": "tab:orange", "template": "tab:olive"}


def _figure(ncols: int, width: float = 4.6, height: float = 4.0, nrows: int = 1):
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained", dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def _draw_paths(ax, xy_cloud, xy_paths, labels=None, alpha_cloud=0.25):
    ax.scatter(xy_cloud[:, 0], xy_cloud[:, 1], s=3, c="0.6", alpha=alpha_cloud, linewidths=0, rasterized=True,
               label="cloud")
    for k, xy in enumerate(xy_paths):
        colour = _PATH_COLOURS[k % len(_PATH_COLOURS)]
        ax.plot(xy[:, 0], xy[:, 1], "-", lw=0.9, color=colour, alpha=0.85,
                label=labels[k] if labels else f"text {k + 1}")
        ax.scatter(xy[:, 0], xy[:, 1], s=8, color=colour, zorder=3)
        ax.scatter(xy[:1, 0], xy[:1, 1], s=60, marker="*", color=colour, edgecolor="k", zorder=4)


def token_trajectories(q1: dict, web_source: str, model: str) -> tuple[Figure, Figure]:
    """Two figures: t-SNE and PCA maps of a vocabulary sample with sentences drawn as paths, and the
    step-length histograms (real sentences against random walks over the vocabulary) that decide it."""
    fig, (a, b) = _figure(2, width=5.2, height=4.6)
    n = q1["n_vocab"]
    cuts = np.cumsum([n] + q1["path_lengths"])
    ev = q1.get("pca_explained", [np.nan, np.nan])
    for ax, key, unit in ((a, "tsne", "t-SNE {} (arbitrary units)"), (b, "pca", "PC {} ({:.1f}% of variance, embedding units)")):
        xy = q1[key]
        paths = [xy[cuts[k]:cuts[k + 1]] for k in range(len(q1["path_lengths"]))]
        _draw_paths(ax, xy[:n], paths)
        ax.set_xlabel(unit.format(1, 100 * ev[0]))
        ax.set_ylabel(unit.format(2, 100 * ev[1]))
        ax.legend(fontsize=7, loc="best", markerscale=2)
    a.set_title(f"t-SNE of {n:,} of {q1['vocab_size']:,} token embeddings\n(qualitative: distances not preserved; star = first token)")
    b.set_title("PCA of the same rows (fitted on the vocabulary sample)")
    fig.suptitle(f"Token trajectories of web text ({web_source}) on the token-embedding space", fontsize=10)
    steps, (c,) = _figure(1, width=6.4, height=4.0)
    t = q1["test"]
    bins = np.linspace(0, np.percentile(np.r_[t["steps"], t["vocab_steps"]], 99.5), 60)
    sns.histplot(t["steps"], bins=bins, stat="density", element="step", fill=False, color="tab:red",
                 label=f"real sentences (n={len(t['steps']):,})", ax=c)
    sns.histplot(t["vocab_steps"], bins=bins, stat="density", element="step", fill=False, color="0.3",
                 label="random walks over the vocabulary", ax=c)
    c.set_xlabel(r"step length $|e_{t+1} - e_t|_2$ (embedding units)")
    c.set_ylabel("density (1 / embedding unit)")
    c.set_title(f"Step lengths between consecutive tokens, {model}\nmedian ratio real / random {t['vocab']['median_ratio']:.2f}")
    c.legend(fontsize=7)
    return fig, steps


def layer_steps(q2: dict, model: str, web_source: str) -> Figure:
    """Step-length ratio to random walks per layer, and token paths on a PCA map of one upper layer."""
    fig, (a, b) = _figure(2, width=5.4)
    df = q2["table"]
    a.axhline(1.0, color="0.4", lw=0.8, ls="--")
    a.plot(df.depth, df.median_ratio, "o-", ms=3, color="tab:red", label="real / random walk over the layer's cloud")
    a.plot(df.depth, df.median_ratio_shuffled, "s-", ms=3, color="tab:blue", label="real / same tokens shuffled")
    up = df[df.point.isin(q2["upper"])]
    a.axvspan(up.depth.min() - 0.5, up.depth.max() + 0.5, color="0.9", zorder=0, label="upper layers")
    a.set_xlabel("layer (0 = token embeddings, i = output of block i)")
    a.set_ylabel("median step length ratio (unitless)")
    a.set_ylim(0, max(1.15, float(np.nanmax(df[["median_ratio", "median_ratio_shuffled"]].to_numpy())) * 1.05))
    a.set_title(f"Consecutive-token steps vs baselines, {model}")
    a.legend(fontsize=7, loc="lower left")
    paths = [q2["path_xy"][q2["path_text"] == k] for k in np.unique(q2["path_text"])]
    _draw_paths(b, q2["cloud_xy"], paths)
    depth = int(df[df.point == q2["shown"]].depth.iloc[0])
    b.set_xlabel(q2["pc_labels"][0])
    b.set_ylabel(q2["pc_labels"][1])
    b.set_title(f"Token paths at layer {depth} (PCA of {len(q2['cloud_xy']):,} sampled tokens)\n"
                f"{q2['projection_note']}", fontsize=8)
    b.legend(fontsize=7, markerscale=2)
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Activation trajectories of web text\n({web_source})", fontsize=10)
    return fig


def squad_vs_web(q3: dict, model: str, web_source: str, depth: int) -> Figure:
    """Last-layer PCA map of web tokens and SQuAD tokens by role; answer vs context distance to the question."""
    from priorlib.compendium import chapter
    ROLE_NAMES = chapter("01_proof_of_concept").ROLE_NAMES

    fig, (a, b) = _figure(2, width=5.2)
    a.scatter(q3["web_xy"][:, 0], q3["web_xy"][:, 1], s=3, c="0.65", alpha=0.35, linewidths=0,
              label="web text", rasterized=True)
    for i, name in enumerate(ROLE_NAMES):
        sel = q3["squad_role"] == i
        if sel.any():
            a.scatter(q3["squad_xy"][sel, 0], q3["squad_xy"][sel, 1], s=4 if name == "context" else 9,
                      alpha=0.35 if name == "context" else 0.8, color=_ROLE_COLOURS[name], linewidths=0,
                      label=f"SQuAD {name}", rasterized=True)
    a.set_xlabel(q3["pc_labels"][0] + ", fitted on web text")
    a.set_ylabel(q3["pc_labels"][1])
    a.text(0.0, -0.22, q3["projection_note"], transform=a.transAxes, fontsize=7, va="top", wrap=True)
    a.set_title(f"Layer {depth}: web text and SQuAD tokens\nk-NN mixing {q3['overlap']['mixing']:.2f} (1 = fully mixed)")
    a.legend(fontsize=7, markerscale=2)
    avq = q3["answer_vs_question"]
    lim = [0, float(max(avq["d_context"].max(), avq["d_answer"].max())) * 1.05]
    b.plot(lim, lim, "--", color="0.4", lw=0.8)
    b.scatter(avq["d_context"], avq["d_answer"], s=14, color="tab:red", alpha=0.7)
    b.set_xlim(lim)
    b.set_ylim(lim)
    b.set_xlabel("rest of context: median cosine distance\nto the question (unitless)")
    b.set_ylabel("answer: median cosine distance\nto the question (unitless)")
    b.set_title(f"One dot per SQuAD prompt ({avq['n_prompts']})\n"
                f"answer closer in {100 * avq['share_answer_closer']:.0f}% (below the diagonal)")
    fig.suptitle(f"SQuAD vs web text at the last layer, {model}\nweb text: {web_source}", fontsize=10)
    return fig


def unimodality(q4: dict, model: str, web_source: str) -> list[Figure]:
    """Two figures: per-layer ΔBIC of 1- vs 2-component mixtures, bars coloured by the layer's decision
    (bimodal / unimodal, the rule of ``layer_unimodality``), and PC1-PC2 densities of a few layers."""
    picks = list(q4["projections"])
    sns.set_theme(style="whitegrid", context="notebook", font_scale=1.0)
    df = q4["table"]
    bar = Figure(figsize=(7.5, 4.2), layout="constrained", dpi=100)
    a = bar.subplots()
    colours = np.where(df.bimodal, "tab:red", "tab:blue")
    a.bar(df.depth, df.delta_bic_per_point, color=colours)
    a.axhline(0, color="0.3", lw=0.8)
    from matplotlib.patches import Patch
    a.legend(handles=[Patch(color="tab:red", label="decided bimodal"), Patch(color="tab:blue", label="decided unimodal")],
             loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    a.set_xlabel("layer (0 = token embeddings)")
    a.set_ylabel(r"$(\mathrm{BIC}_1 - \mathrm{BIC}_2)$ / tokens (nats per token)")
    a.set_title(f"{q4['n_bimodal']} of {q4['n_layers']} layers decided bimodal (needs ΔBIC, a density valley and two weighty components)")
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    bar.suptitle(f"Shape of the token-activation cloud per layer, {model}; web text: {web_source}")
    dens = Figure(figsize=(4.6 * len(picks), 4.4), layout="constrained", dpi=100)
    axes = np.atleast_1d(dens.subplots(1, len(picks)))
    depth = dict(zip(df.point, df.depth))
    for ax, p in zip(axes, picks):
        z = q4["projections"][p]
        hb = ax.hexbin(z[:, 0], z[:, 1], gridsize=35, bins="log", cmap="viridis", mincnt=1)
        dens.colorbar(hb, ax=ax, label="tokens per hexagon (log scale)")
        row = df[df.point == p].iloc[0]
        lab = q4.get("pc_labels", {}).get(p, ["PC 1", "PC 2"])
        ax.set_xlabel(lab[0])
        ax.set_ylabel(lab[1])
        ax.set_title(f"layer {depth[p]}: valley {row.valley_depth:.2f}, {'bimodal' if row.bimodal else 'unimodal'}")
    dens.suptitle("Token-activation density on PC1-PC2 of a few layers; " + q4.get("projection_note", ""), fontsize=10)
    return [bar, dens]


def task_clusters(q5: dict, model: str, depths: dict[str, int]) -> list[Figure]:
    """Two figures: t-SNE maps (qualitative) of per-sample mean activations coloured by task, at most
    two per row; and separation scores per layer."""
    maps = q5["maps"]
    ncols = min(2, len(maps))
    fig, axes = _figure(ncols, width=5.4, height=4.8, nrows=(len(maps) + ncols - 1) // ncols)
    for ax in axes[len(maps):]:
        ax.axis("off")
    tasks = q5["tasks"]
    names = list(dict.fromkeys(tasks))
    palette = dict(zip(names, ["0.35", "tab:orange"] + sns.color_palette("crest", len(names) - 2).as_hex()))
    for ax, (p, xy) in zip(axes, maps.items()):
        sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=tasks, palette=palette, s=14, linewidth=0, ax=ax,
                        legend=ax is axes[0])
        ax.set_xlabel("t-SNE 1 (arbitrary units)")
        ax.set_ylabel("t-SNE 2 (arbitrary units)")
        ax.set_title(f"layer {depths[p]}: mean activation per sample (t-SNE, qualitative)")
    if axes[0].get_legend() is not None:
        sns.move_legend(axes[0], "best", fontsize=7, title="task")
    fig.suptitle(f"Task clusters: web text, SQuAD and six MATH modules, {model} (the paper used T5-base)",
                 fontsize=11)
    sep, (c,) = _figure(1, width=7.5, height=4.4)
    df = q5["table"]
    c.plot(df.depth, df.silhouette_math_vs_nlp, "o-", ms=3, color="tab:green", label="silhouette MATH vs NLP")
    c.plot(df.depth, df.silhouette_squad_vs_web, "o-", ms=3, color="tab:orange", label="silhouette SQuAD vs web")
    c.plot(df.depth, df.probe_math_vs_nlp, "--", color="tab:green", label="probe MATH vs NLP")
    c.plot(df.depth, df.probe_squad_vs_web, "--", color="tab:orange", label="probe SQuAD vs web")
    c.axhline(0, color="0.3", lw=0.8)
    c.set_xlabel("layer (0 = token embeddings)")
    c.set_ylabel("silhouette / 5-fold CV probe accuracy (unitless)")
    c.set_ylim(-0.25, 1.05)
    c.set_title("Separation per layer")
    c.xaxis.set_major_locator(MaxNLocator(integer=True))
    c.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    sep.suptitle(f"Separation of the task clusters per layer, {model}", fontsize=11)
    return [fig, sep]


def save(fig: Figure, out_dir, name: str) -> Path:
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
