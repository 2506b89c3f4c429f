"""Prior vs posterior pictures: the pretrained cloud (blue), sampled (hollow red) and trained (red)
prompts on one fixed 2-D projection, and frames for the checkpoint scrubber."""
from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from sklearn.decomposition import PCA

from priorlib.compendium.plots.styles import series_styles, split_title


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


class RadialMap:
    """A 2-D map whose one measured quantity is exact: each vector sits at its Mahalanobis distance from
    ``gaussian``'s mean (the radius), in its direction on ``proj`` (the angle). A prompt far from the token
    cloud by that distance is drawn far from its centre, which a linear projection cannot promise; distances
    between points are not measured. Same interface as :class:`Projection` (the scrubber takes either).

        rm = RadialMap(proj, reference.fit())        # proj: runs.joint_projection(reference, panels)
        xy = rm(trained_prompt)                      # [n, 2]; np.hypot(*xy.T) == exact distances
    """
    equal_aspect = True

    def __init__(self, proj: "Projection", gaussian, radius: float | None = None):
        from priorlib.metrics.placement import hdr_threshold
        self.proj, self.gaussian, self.dim = proj, gaussian, proj.dim
        self.radius = float(hdr_threshold(self.dim) if radius is None else radius)
        self.centre = proj(gaussian.mean.float().reshape(1, -1))[0]
        self.explained = proj.explained
        self.kind = f"radial map (radius: exact Mahalanobis distance; angle: direction on the {proj.kind})"
        self.cloud = self(proj.fit_rows[: min(5000, len(proj.fit_rows))])

    def distances(self, v) -> np.ndarray:
        v = torch.as_tensor(v).detach().float().reshape(-1, self.dim)
        return self.gaussian.mahalanobis(v).double().numpy()

    def at(self, v, m) -> np.ndarray:
        """``[n, 2]``: the vectors ``v`` at the given distances ``m``, in their directions on the map."""
        xy = self.proj(v) - self.centre
        ang = np.arctan2(xy[:, 1], xy[:, 0])
        return np.stack([m * np.cos(ang), m * np.sin(ang)], axis=1)

    def __call__(self, v) -> np.ndarray:
        return self.at(v, self.distances(v))

    def axes_labels(self, ax):
        ax.set_xlabel("Mahalanobis distance × cos(direction on the 2-D map)", fontsize=8)
        ax.set_ylabel("Mahalanobis distance × sin(direction)", fontsize=8)

    def draw_clouds(self, ax, label: str):
        from matplotlib.patches import Circle
        ax.scatter(*self.cloud.T, s=2, c="tab:blue", alpha=0.15, linewidths=0, label=label)
        ax.add_patch(Circle((0, 0), self.radius, fill=False, ls="--", lw=0.9, ec="k", zorder=2,
                            label=f"95% region, r = {self.radius:.1f}"))

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
    ax.scatter(*xy[:n_cloud].T, s=3, c="0.6", alpha=0.3, linewidths=0, label=reference_name, zorder=1)
    groups, settings = zip(*(split_title(t) for t, _, _ in blocks))
    if len(set(zip(groups, settings))) < len(blocks):  # titles that do not split into prior + settings
        groups, settings = [t for t, _, _ in blocks], [""] * len(blocks)
    looks = series_styles(list(groups), list(settings))
    i = n_cloud
    for (t, s, e), look in zip(blocks, looks):
        a, b = xy[i:i + len(s)], xy[i + len(s):i + len(s) + len(e)]
        i += len(s) + len(e)
        ax.scatter(*a.T, s=24, marker=look["marker"], facecolors="none", edgecolors=[look["color"]], zorder=2)
        ax.scatter(*b.T, s=16, marker=look["marker"], color=look["color"], label=t, zorder=3)
    ax.set_xlabel("t-SNE 1 (arbitrary units)")
    ax.set_ylabel("t-SNE 2 (arbitrary units)")
    ax.set_title("t-SNE, qualitative only (distances not preserved): hollow sampled, filled trained", fontsize=9)
    varying = [k for k in dict.fromkeys(w.split("=")[0] for x in settings for w in x.split())
               if len({w for x in settings for w in x.split() if w.startswith(k + "=")}) > 1]
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
              title=f"colour: prior; marker: {', '.join(varying)}" if varying else None, title_fontsize=7)
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


def mahalanobis_strips(reference, panels, *, draws: dict | None = None, radius: float | None = None, proj=None,
                       reference_name: str = "token embeddings", n_points: int = 3000, seed: int = 0,
                       title: str = ""):
    """``(fig, caption)``: where every group sits in the one quantity a placement claim is about, the
    Mahalanobis distance to the Gaussian fitted to ``reference`` (exact, not projected), so no 2-D map
    can put a far group in the middle of a near one.

    Left: one strip per group, x = Mahalanobis distance (each dot one vector, vertical jitter only; black
    tick: the median; at the right: the median and the share inside the fit's 95% region), top to
    bottom: the reference rows (all of them, ``n_points`` drawn), each prior's draws in ``draws``
    (``{prior: distances}``, e.g. ``exclusion_density(...)["distances"]``; a ``"vocabulary"`` entry is
    taken as the reference rows' distances), then per panel ``(title, sampled [n, d], trained [n, d])``
    its sampled (hollow) and trained (filled) prompt vectors. Dashed: the 95% region's radius ``radius``
    (default ``sqrt(chi2_d^-1(0.95))``). Colour = prior (the part of a panel title without ``=``).

    With ``proj`` (the joint projection, :class:`Projection`): a second panel, a radial map whose radius
    is each vector's exact Mahalanobis distance and whose direction is the vector's direction on
    ``proj`` from the fit's mean; the reference rows are drawn first, under everything else."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Circle

    from priorlib.compendium.plots.styles import colours, split_title
    from priorlib.metrics.placement import hdr_threshold
    g = reference.fit()
    radius = float(hdr_threshold(reference.dim) if radius is None else radius)
    rng = np.random.default_rng(seed)
    sub = rng.choice(len(reference.vectors), min(n_points, len(reference.vectors)), replace=False)
    tok_vec = reference.vectors[torch.as_tensor(np.sort(sub))].float()
    tok_m = g.mahalanobis(tok_vec).double().numpy()
    draws = dict(draws or {})
    all_tok = np.asarray(draws.pop("vocabulary", tok_m), float)

    def maha(v):
        return g.mahalanobis(torch.as_tensor(v).detach().float().reshape(-1, reference.dim)).double().numpy()

    priors = list(dict.fromkeys(list(draws) + [split_title(t)[0] for t, _, _ in panels]))
    colour = dict(zip(priors, colours(len(priors))))
    rows = [(f"{reference_name} (all {len(all_tok):,})", all_tok, "0.35", "full")]
    rows += [(f"{name} prior draws (n={len(v):,})", np.asarray(v, float), colour[name], "full")
             for name, v in draws.items()]
    vecs = []
    for t, sampled, trained in panels:
        c = colour[split_title(t)[0]]
        for when, v in (("sampled", sampled), ("trained", trained)):
            m = maha(v)
            rows.append((f"{t}, {when}", m, c, "none" if when == "sampled" else "full"))
            vecs.append((torch.as_tensor(v).detach().float().reshape(-1, reference.dim), m, c, when))

    n = len(rows)
    width = 11.5 if proj is not None else 7.6
    fig = plt.figure(figsize=(width, max(3.2, 0.36 * n + 1.4)))
    if proj is not None:
        ax, mp = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.45, 1]})
    else:
        ax, mp = fig.subplots(1, 1), None
    for k, (name, m, c, fill) in enumerate(rows):
        y = n - 1 - k
        shown = m if len(m) <= n_points else m[rng.choice(len(m), n_points, replace=False)]
        jitter = y + rng.uniform(-0.3, 0.3, len(shown))
        big = len(shown) > 200
        if fill == "none":
            ax.scatter(shown, jitter, s=16, facecolors="none", edgecolors=[c], linewidths=0.8, zorder=3)
        else:
            ax.scatter(shown, jitter, s=3 if big else 12, color=c, alpha=0.35 if big else 0.9, linewidths=0,
                       zorder=2 if big else 3)
        med = float(np.median(m))
        ax.plot([med, med], [y - 0.4, y + 0.4], c="k", lw=1.6, zorder=4)
        ax.text(1.01, y, f"median {med:.1f}, {100 * np.mean(m <= radius):.0f}% inside",
                transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    ax.axvline(radius, c="k", ls="--", lw=0.9, zorder=1)
    ax.set_yticks(range(n))
    ax.set_yticklabels([r[0] for r in rows][::-1], fontsize=7)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"Mahalanobis distance to the Gaussian fit of the {reference_name} (sd units, exact, d={reference.dim})",
                  fontsize=8)
    ax.set_title(f"dashed: the fit's 95% region (r = {radius:.1f}); black tick: median", fontsize=9)
    if mp is not None:
        radial = RadialMap(proj, g, radius).at
        tok_xy = radial(tok_vec, tok_m)
        mp.scatter(*tok_xy.T, s=3, c="0.35", alpha=0.35, linewidths=0, zorder=1)  # under every prompt
        for v, m, c, when in vecs:
            xy = radial(v, m)
            if when == "sampled":
                mp.scatter(*xy.T, s=20, facecolors="none", edgecolors=[c], linewidths=0.8, zorder=3)
            else:
                mp.scatter(*xy.T, s=12, color=c, zorder=4)
        mp.add_patch(Circle((0, 0), radius, fill=False, ls="--", lw=0.9, ec="k", zorder=2))
        mp.set_aspect("equal", adjustable="datalim")
        mp.set_xlabel("distance × cos(direction on the joint map)", fontsize=8)
        mp.set_ylabel("distance × sin(direction on the joint map)", fontsize=8)
        mp.set_title("radius: exact Mahalanobis distance; angle: from the joint map", fontsize=9)
        handles = ([Line2D([], [], ls="", marker="o", ms=4, color="0.35", label=reference_name)]
                   + [Line2D([], [], ls="", marker="o", ms=5, color=colour[p], label=p) for p in priors]
                   + [Line2D([], [], ls="", marker="o", ms=5, mfc="none", mec="k", label="sampled (prior)"),
                      Line2D([], [], ls="", marker="o", ms=5, color="k", label="trained (posterior)"),
                      Line2D([], [], ls="--", c="k", label=f"95% region, r = {radius:.1f}")])
        mp.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    meds = "; ".join(f"{_without_count(name)} {float(np.median(m)):.1f}" for name, m, _, _ in rows)
    caption = (f"Mahalanobis distance to the Gaussian fitted to the {reference_name} (d = {reference.dim}), exact: one "
               f"strip per group, each dot one vector; dashed: the fit's 95% region (r = {radius:.1f}). Medians: {meds}."
               + (" Right: each vector at its exact distance from the fit's mean, in its direction on the joint map "
                  "(only the distance from the centre is measured; distances between points are not)." if mp is not None
                  else ""))
    return fig, caption


def _without_count(name: str) -> str:
    """A strip's label without its trailing count, ``"(all 7,008)"`` or ``"(n=400)"``; the rest stays, so
    two panels of one prior ("VAE (β = 1, ...), sampled" and "..., trained") keep apart in a caption."""
    return re.sub(r"\s*\((?:all [\d,]+|n=[\d,]+)\)$", "", name)


def scrubber_frames(proj, checkpoints: list[tuple[int, torch.Tensor]], history, *,
                    reference_name: str = "", title: str):
    """One figure per checkpoint: prompts on ``proj`` (left: a :class:`Projection` or a :class:`RadialMap`)
    and the loss curve so far (right)."""
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
        if getattr(proj, "equal_aspect", False):  # the box shrinks, the limits (the same in every frame) stay
            a.set_aspect("equal", adjustable="box")
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
    """Training loss (``smooth``-step running mean) per run: colour per prior (run group), line style per
    learning rate / seed (:func:`~priorlib.compendium.plots.styles.run_factors`), markers too past 6 of those."""
    from priorlib.compendium.plots.styles import LINESTYLES, run_factors, series_styles
    groups, variants, legend_title = run_factors([r.config for r in runs], label_fn)
    many = len(set(variants)) > len(LINESTYLES)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for r, look in zip(runs, series_styles(groups, variants)):
        h = r.history()
        if not many:
            look = {**look, "marker": None}
        ax.plot(h["step"], h["loss"].rolling(smooth, min_periods=1).mean(), lw=1, ms=3,
                markevery=max(1, len(h) // 8), label=label_fn(r.config), **look)
    ax.set_xlabel("training step"); ax.set_ylabel(f"answer loss, {smooth}-step mean (nats/token)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,  # off the curves
              title=legend_title or None, title_fontsize=7, handlelength=3)
    fig.tight_layout()
    return fig
