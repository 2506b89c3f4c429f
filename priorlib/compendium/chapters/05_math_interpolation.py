"""Chapter 05 (paper section 4.5): MATH activation clusters, and the interpolation prior.

    S = chapter("05_math_interpolation")
    s = setup("05_math_interpolation", "cpu")   # priorlib.compendium.setup
    means = S.domain_means(model, tok, model_name=s.base.model, n_texts=s.n_texts)
    scores = S.cluster_scores(means)
    seps = S.domain_clusters(means, layer=s.base.deep_layers[-1])   # the verdicts' protocol.Separation pair

:func:`domain_means` captures per-text mean activations of web text (the C4 stand-in), SQuAD and MATH at
the input of every layer; :func:`cluster_scores` scores, per layer, how well MATH separates from the two
NLP domains and SQuAD from web text, with the book's one cluster measure
(:func:`priorlib.metrics.clusters.domain_separation`, as notebooks 01 and 09). Deep prompts then train on MATH from the interpolation prior between
the MATH and web-text Gaussians and from baselines; :func:`two_cloud_placement` says where the trained
blocks sit relative to both fits. The arms, the setup and the quality tables are shared with chapter 06
(:mod:`priorlib.compendium.arms`) and re-exported here, so the notebook needs this module only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from priorlib.compendium import decide
from priorlib.compendium.arms import (ARM_TITLES, ARMS, DOMAINS, Setup, arm_means,  # noqa: F401
                                      arm_of, deep_key, domain_references, load_model, model_note, quality, rows,
                                      train_runs, usable)
from priorlib.config import TrainConfig
from priorlib.compendium.verdicts import Outcome, Verdict

STEM = "05_math_interpolation"

# Kaufman & Rousseeuw's reading of the silhouette coefficient: words for the captions, not a decision rule
SILHOUETTE_NO_STRUCTURE = 0.25   # <= 0.25: no substantial cluster structure
SILHOUETTE_REASONABLE = 0.50     # > 0.50: a reasonable cluster structure
BASELINE = "fitted-gaussian"     # the arm an interpolation prior must not be worse than


# the per-text means of chapter 05: positions [start, stop) of each text (priorlib.activations.TextMeans)
MEAN_WINDOWS = {"skip_first": (1, None), "all_tokens": (0, None), "short": (1, 25)}


def domain_means(model, tok, *, model_name: str, n_texts: int, max_length: int = 128,
                 domains=DOMAINS) -> dict:
    """Per-text mean activations at the input of every layer, for each domain, from one pass.

    Returns ``{"layers": [L], "domain": [N] (index into domains), variant: [L, N, d]}`` with the
    variants of :data:`MEAN_WINDOWS`: ``"skip_first"`` (mean over tokens 1.. — the first position of a
    causal LM carries an attention-sink vector of very large norm, whose weight 1/T would otherwise
    encode text length), ``"all_tokens"`` (mean over all tokens, as ``capture(reduce="mean")``) and
    ``"short"`` (tokens 1..24 only, so every domain averages over about as many tokens as a MATH
    problem has). Cached by :func:`priorlib.cache.cached`.
    """
    from priorlib.activations import TextMeans
    from priorlib.cache import cached
    from priorlib.hooks import hook_points, iter_activations
    from priorlib.tasks import domain_texts

    points = hook_points(model, site="resid_pre", embed=False)

    def compute_all():
        texts, labels = [], []
        for k, d in enumerate(domains):
            t = domain_texts(d, n_texts)
            texts += t
            labels += [k] * len(t)
        means = {name: TextMeans(len(texts), *w) for name, w in MEAN_WINDOWS.items()}
        for acts, mask, _, idx in iter_activations(model, tok, texts, points, max_length=max_length, progress=False):
            for m in means.values():
                m.add(acts, mask, idx)
        return {"layers": torch.arange(len(points)), "domain": torch.tensor(labels),
                **{name: torch.stack([m[p] for p in points]) for name, m in means.items()}}

    params = {"model": model_name, "n_texts": n_texts, "max_length": max_length, "domains": list(domains),
              "windows": MEAN_WINDOWS, "version": 2}
    out = dict(cached("s05-domain-means", params, compute_all, verbose=False))
    out["domains"] = list(domains)
    out["cache_params"] = params
    return out


def cluster_scores(means: dict, variant: str = "skip_first", folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Per layer: :func:`priorlib.metrics.clusters.domain_separation` of the per-text means ``variant``
    (silhouette, cross-validated probe accuracy and its chance level, MATH vs NLP and SQuAD vs web),
    cached by :func:`priorlib.cache.cached` when ``means`` came from :func:`domain_means`."""
    from priorlib.cache import cached
    from priorlib.metrics.clusters import domain_separation

    def compute() -> dict:
        names = np.asarray(means["domains"])[means["domain"].numpy()]
        x = means[variant].float().numpy()  # [L, N, d]
        table = [{"layer": layer, **domain_separation(x[i], names, folds=folds, seed=seed)}
                 for i, layer in enumerate(means["layers"].tolist())]
        return {k: np.array([r[k] for r in table]) for k in table[0]}

    params = {"means": means.get("cache_params"), "variant": variant, "folds": folds, "seed": seed, "version": 2}
    got = compute() if params["means"] is None else cached("s05-cluster-scores", params, compute, verbose=False)
    df = pd.DataFrame({k: np.asarray(v) for k, v in got.items()})
    df["layer"] = df["layer"].astype(int)
    return df[["layer"] + sorted(c for c in df if c != "layer")]


def cluster_summary(scores: pd.DataFrame, deep_layers: list[int]) -> dict:
    """Numbers the captions and the verdict use: medians over all layers and over the deep layers."""
    deep = scores[scores["layer"].isin(deep_layers)]
    out = {}
    for part, df in (("all", scores), ("deep", deep)):
        for c in ("silhouette_math_vs_nlp", "silhouette_squad_vs_web", "probe_math_vs_nlp", "probe_squad_vs_web"):
            out[f"{c}_{part}"] = float(df[c].median())
    out["layers_math_more_separated"] = int((scores["silhouette_math_vs_nlp"] > scores["silhouette_squad_vs_web"]).sum())
    out["n_layers"] = int(len(scores))
    out["best_math_layer"] = int(scores.loc[scores["silhouette_math_vs_nlp"].idxmax(), "layer"])
    return out


def domain_clusters(means: dict, layer: int, variant: str = "skip_first", seed: int = 0) -> dict:
    """``{"math_vs_nlp", "squad_vs_web"}``: :func:`priorlib.compendium.decide.cluster` (the protocol's
    separation) of the per-text means ``variant`` at the input of ``layer`` (negative: from the end)."""
    layers = means["layers"].tolist()
    i = layers.index(layers[layer]) if layer < 0 else layers.index(layer)
    x = means[variant][i].float().numpy()
    names = np.asarray(means["domains"])[means["domain"].numpy()]
    nlp = np.isin(names, ["web", "squad"])
    return {"math_vs_nlp": decide.cluster(x[names == "math"], x[nlp], seed=seed),
            "squad_vs_web": decide.cluster(x[names == "squad"], x[names == "web"], seed=seed)}


def _plane_silhouette(a: np.ndarray, b: np.ndarray, fit: np.ndarray, rows: np.ndarray, seed: int) -> float:
    """Silhouette of ``a`` against ``b`` drawn in the 2-D :class:`~priorlib.projection.ActivationProjection`
    fitted on ``fit``: the two plane coordinates standardised over ``a`` and ``b`` together (as
    :func:`priorlib.protocol.separation` standardises its features), then the Euclidean silhouette.
    ``rows`` (indices into ``vstack([a, b])``, repeats allowed) weight the points as a bootstrap
    resample does (:func:`priorlib.protocol._resampled_silhouette`)."""
    from priorlib.projection import ActivationProjection
    from priorlib.protocol import _resampled_silhouette
    from sklearn.metrics import pairwise_distances

    proj = ActivationProjection(fit, factor=np.inf, seed=seed)  # no rows dropped here: the caller drops them
    xy = proj.transform(np.vstack([a, b]))
    w = np.bincount(rows, minlength=len(xy)).astype(np.float64)
    mean = w @ xy / w.sum()
    sd = np.sqrt(w @ (xy - mean) ** 2 / w.sum())
    xy = (xy - mean) / np.where(sd > 0, sd, 1.0)
    labels = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    return _resampled_silhouette(pairwise_distances(xy), labels, rows)


def sharpening_draws(a, b, extra, *, seed: int = 0, n_boot: int = 200) -> dict:
    """The numbers :func:`projection_sharpening` decides on: ``{"without", "with", "diffs" [n_boot]}``."""
    a, b, c = (np.asarray(v, dtype=np.float64) for v in (a, b, extra))
    if not (a.ndim == b.ndim == c.ndim == 2 and a.shape[1] == b.shape[1] == c.shape[1]):
        raise ValueError(f"a, b and extra must be [n, d] with one d, got {a.shape}, {b.shape} and {c.shape}")
    if min(len(a), len(b), len(c)) < 3:
        raise ValueError(f"each group needs >= 3 rows, got {len(a)}, {len(b)} and {len(c)}")
    na, nb, nc = len(a), len(b), len(c)

    def pair(ia, ib, ic) -> tuple[float, float]:
        rows = np.r_[ia, na + ib]
        ab = np.vstack([a[ia], b[ib]])
        return (_plane_silhouette(a, b, ab, rows, seed),
                _plane_silhouette(a, b, np.vstack([ab, c[ic]]), rows, seed))

    without, with_ = pair(np.arange(na), np.arange(nb), np.arange(nc))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        wo, wi = pair(rng.integers(0, na, na), rng.integers(0, nb, nb), rng.integers(0, nc, nc))
        diffs[i] = wi - wo
    return {"without": without, "with": with_, "diffs": diffs, "n": np.array([na, nb, nc])}


def sharpening_decision(draws: dict, confidence: float = 0.95) -> dict:
    """The outcome of :func:`sharpening_draws`: the percentile interval of with minus without above 0 ->
    agrees, below 0 -> contradicts, else inconclusive."""
    without, with_, diffs = float(draws["without"]), float(draws["with"]), np.asarray(draws["diffs"], np.float64)
    lo, hi = (float(q) for q in np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2]))
    est = with_ - without
    span = (f"silhouette in the 2-D projection {without:.3f} without, {with_:.3f} with the extra rows; difference "
            f"{est:+.3f}, {confidence:.0%} bootstrap CI [{lo:+.3f}, {hi:+.3f}] (rows resampled per group, "
            f"both projections refitted, {len(diffs)} resamples)")
    outcome, why = ((Outcome.AGREES, "sharper with them") if lo > 0 else
                    (Outcome.CONTRADICTS, "less sharp with them") if hi < 0 else
                    (Outcome.INCONCLUSIVE, "the interval holds 0"))
    return {"without": without, "with": with_, "estimate": est, "ci": [lo, hi], "confidence": confidence,
            "n_boot": len(diffs), "n": [int(v) for v in np.asarray(draws["n"])], "outcome": outcome,
            "reason": f"{why}: {span}"}


def projection_sharpening(a, b, extra, *, seed: int = 0, n_boot: int = 200, confidence: float = 0.95) -> dict:
    """Does drawing ``extra`` rows into the picture make ``a`` and ``b`` look more different?

    The picture is the chapter's: :class:`~priorlib.projection.ActivationProjection` (each dimension
    standardised over the rows it is fitted on, PCA to 2-D). It is fitted once on ``a + b`` ("without")
    and once on ``a + b + extra`` ("with"); in each plane the silhouette of ``a`` against ``b`` is
    measured on the two coordinates standardised over ``a + b`` (the standardisation of
    :func:`priorlib.protocol.separation`); ``estimate`` is with minus without. Interval: percentile
    bootstrap, rows resampled within each of the three groups and **both projections refitted on every
    resample** (the projection's own variability is in the interval). Outcome: interval above 0 ->
    agrees ("sharpens"), below 0 -> contradicts, else inconclusive. In the full space the silhouette does
    not depend on which rows a projection was fitted on, so this is a claim about the 2-D picture.

        rng = np.random.default_rng(0)
        web, squad, math = (rng.normal(size=(150, 60)) for _ in range(3))
        squad[:, :12] += 0.45          # a small shift, lost among the 60 noise directions of SQuAD + web
        math[:, :12] += 10.0           # far away along the same block: it turns PC1 onto the shift
        projection_sharpening(squad, web, math, seed=0)["outcome"]   # Outcome.AGREES
    """
    return sharpening_decision(sharpening_draws(a, b, extra, seed=seed, n_boot=n_boot), confidence)


def math_sharpening(means: dict, layer: int, variant: str = "skip_first", seed: int = 0, n: int = 200,
                    n_boot: int = 200) -> dict:
    """:func:`projection_sharpening` of SQuAD against web text, with MATH as the extra rows, at the input
    of ``layer`` (negative: from the end): the per-text means ``variant`` that :func:`domain_clusters`
    and the notebook's scatter use. As in the scatter, rows of massive norm (> 4x the median over all
    three domains, :func:`priorlib.projection.massive_rows`) are dropped first; at most ``n`` rows per
    domain are kept (drawn with ``seed``; every resample refits two PCAs). The bootstrap draws are cached
    by :func:`priorlib.cache.cached` when ``means`` came from :func:`domain_means`. Adds ``"dropped"``
    (rows dropped as massive) and ``"layer"``."""
    from priorlib.cache import cached
    from priorlib.projection import massive_rows

    layers = means["layers"].tolist()
    i = layers.index(layers[layer]) if layer < 0 else layers.index(layer)
    x = means[variant][i].float().numpy()
    names = np.asarray(means["domains"])[means["domain"].numpy()]
    keep = ~massive_rows(x)

    def compute() -> dict:
        rng = np.random.default_rng(seed)
        part = {}
        for d in ("squad", "web", "math"):
            rows_ = x[keep & (names == d)]
            part[d] = rows_[rng.choice(len(rows_), min(n, len(rows_)), replace=False)]
        return sharpening_draws(part["squad"], part["web"], part["math"], seed=seed, n_boot=n_boot)

    params = {"means": means.get("cache_params"), "layer": int(layers[i]), "variant": variant, "seed": seed, "n": n,
              "n_boot": n_boot, "version": 1}
    draws = compute() if params["means"] is None else cached("s05-math-sharpening", params, compute, verbose=False)
    return {**sharpening_decision(draws), "dropped": int((~keep).sum()), "layer": int(layers[i])}


def mahalanobis_to(refs: dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {d: r.fit().mahalanobis(x.float()) for d, r in refs.items()}


def two_cloud_placement(runs, refs: dict, key: str) -> pd.DataFrame:
    """Per run and moment (sampled / trained): median Mahalanobis distance of the deep block's vectors
    to the MATH and the web-text fit, the share of vectors closer (in Mahalanobis terms) to MATH,
    and how far the vectors moved (median L2 over the prompt positions)."""
    out = []
    for r in runs:
        ck = r.checkpoints()
        first, last = ck[0][1][key], ck[-1][1][key]
        for when, step, x in (("sampled", ck[0][0], first), ("trained", ck[-1][0], last)):
            m = mahalanobis_to(refs, x)
            row = {"arm": arm_of(r.config), "lr": r.config.lr, "seed": r.config.seed, "when": when, "step": step}
            for d, v in m.items():
                row[f"maha_{d}"] = float(v.median())
            row["share_closer_to_math"] = float((m["math"] < m["web"]).double().mean())
            row["moved_l2"] = float((last - first).norm(dim=-1).median())
            row["norm"] = float(x.norm(dim=-1).median())
            out.append(row)
    return pd.DataFrame(out)


def reference_yardstick(refs: dict, n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Median Mahalanobis distance of each domain's own rows to each fit: what "inside" looks like."""
    g = torch.Generator().manual_seed(seed)
    rows_ = []
    for src, r in refs.items():
        x = r.vectors[torch.randperm(len(r), generator=g)[:n]]
        m = mahalanobis_to(refs, x)
        rows_.append({"rows of": src, **{f"maha_{d}": float(v.median()) for d, v in m.items()},
                      "share_closer_to_math": float((m["math"] < m["web"]).double().mean()),
                      "norm": float(x.norm(dim=-1).median())})
    return pd.DataFrame(rows_)


def placement_summary(place: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per arm and moment."""
    cols = [c for c in place if c.startswith("maha_")] + ["share_closer_to_math", "moved_l2", "norm"]
    return place.groupby(["arm", "when"])[cols].mean().round(3).reset_index()


def verdict(summ: dict, controls: dict[str, dict], df: pd.DataFrame, *, seps: dict,
            sharpen: dict | None = None) -> tuple[list[Verdict], dict]:
    """The closing verdicts of notebook 05 and the numbers behind them (rules: ``margins.RULES``).

    ``seps`` is :func:`domain_clusters` at the last deep-prompt layer: MATH forms its own cluster when
    MATH vs NLP is separated; SQuAD and web text share one when :func:`decide.one_cluster` agrees (the
    silhouette's interval within the ``silhouette`` margin of the random-split null). An interpolation arm is usable when :func:`usable` against the
    fitted-Gaussian arm agrees, for every interpolation arm. ``sharpen`` is :func:`math_sharpening` at the
    same layer: bringing MATH into the projection sharpens SQuAD against web text when the bootstrap
    interval of the silhouette difference (with minus without MATH) lies above 0 (``None``: inconclusive).
    """
    loss = arm_means(df, "final_val_loss")
    acc = arm_means(df, "final_accuracy") if "final_accuracy" in df else {}
    drop = arm_means(df.assign(d=df["initial_val_loss"] - df["final_val_loss"]), "d")
    ctrl = "; ".join(f"{k}: {v['silhouette_math_vs_nlp_all']:.2f} / {v['silhouette_squad_vs_web_all']:.2f}"
                     for k, v in controls.items())
    strength = ("reasonable" if summ["silhouette_math_vs_nlp_all"] > SILHOUETTE_REASONABLE else
                "weak" if summ["silhouette_math_vs_nlp_all"] > SILHOUETTE_NO_STRUCTURE else "not substantial")
    math_sep, squad_sep = seps["math_vs_nlp"], seps["squad_vs_web"]
    one, one_why = decide.one_cluster(squad_sep)
    rows = [Verdict(
        "MATH activations form their own cluster",
        f"MATH vs SQuAD+web at the last deep-prompt layer: {math_sep.reason}. Over all {summ['n_layers']} layers: "
        f"median silhouette {summ['silhouette_math_vs_nlp_all']:.2f}, higher than SQuAD vs web at "
        f"{summ['layers_math_more_separated']} of {summ['n_layers']} layers, linear probe "
        f"{100 * summ['probe_math_vs_nlp_all']:.0f}%; in Kaufman & Rousseeuw's words the structure is {strength}. "
        f"Controls, MATH-vs-NLP / SQuAD-vs-web median silhouette: {ctrl or 'none'}",
        math_sep.outcome, claim_id="math-own-cluster"), Verdict(
        "SQuAD activations do not diverge far from C4 (here a web-text stand-in): one cluster",
        f"SQuAD vs web at the last deep-prompt layer, `one_cluster`: {one_why}; "
        f"median silhouette over layers {summ['silhouette_squad_vs_web_all']:.2f}, linear probe "
        f"{100 * summ['probe_squad_vs_web_all']:.0f}%",
        one, claim_id="squad-near-web")]
    interp = [a for a in loss if a.startswith("interp")]
    if interp and BASELINE in loss:
        tests = {a: usable(df, a, BASELINE) for a in interp}
        meas = "; ".join(f"{a}: val loss {loss[a][0]:.3f} ± {loss[a][1]:.3f}"
                         + (f", accuracy {acc[a][0]:.1f} ± {acc[a][1]:.1f}%" if a in acc else "") for a in interp)
        meas += f" vs {BASELINE} {loss[BASELINE][0]:.3f} ± {loss[BASELINE][1]:.3f}" + (
            f", {acc[BASELINE][0]:.1f} ± {acc[BASELINE][1]:.1f}%" if BASELINE in acc else "")
        meas += ". Usable (loss falls, not worse than the fitted Gaussian): " + "; ".join(
            f"{o.value} ({why})" for o, why in tests.values())
        rows.append(Verdict("Interpolation priors between domains can be used for MATH", meas,
                            decide.every(o for o, _ in tests.values()), claim_id="interpolation-usable"))
    else:
        rows.append(Verdict("Interpolation priors between domains can be used for MATH",
                            f"needs an interpolation arm and the {BASELINE} arm", Outcome.INCONCLUSIVE,
                            claim_id="interpolation-usable"))
    sharp_claim = "Bringing MATH into the picture makes the difference between C4 (here web text) and SQuAD stand out more"
    if sharpen is None:
        rows.append(Verdict(sharp_claim, "needs math_sharpening (the projection fitted with and without MATH)",
                            Outcome.INCONCLUSIVE, claim_id="math-sharpens-difference"))
    else:
        rows.append(Verdict(
            sharp_claim, f"SQuAD vs web in the chapter's 2-D projection (z-scored PCA) at the input of layer "
                         f"{sharpen.get('layer', '?')}, fitted without and with the MATH rows: {sharpen['reason']}",
            sharpen["outcome"], claim_id="math-sharpens-difference"))
    numbers = {"final_val_loss": loss, "final_accuracy": acc, "val_loss_drop": drop,
               "math_sharpening": None if sharpen is None else
               {k: (v.value if isinstance(v, Outcome) else v) for k, v in sharpen.items() if k != "reason"},
               "separation": {k: {"silhouette": v.estimate, "ci": [v.ci_low, v.ci_high], "null_upper": v.null_upper,
                                  "outcome": v.outcome.value} for k, v in seps.items()}}
    return rows, numbers


def settings(profile: str, *, model=None, priors=None, learning_rates=None, seeds=None, steps=None, batch_size=None,
             n_tokens=None, deep_layers=None, max_length=None, eval_size=None, vae_epochs=None, out_dir=None) -> Setup:
    """This chapter's settings (through :func:`priorlib.compendium.setup.setup`): ``None`` is the profile's value."""
    from priorlib.compendium import arms
    return arms.setup("05_math_interpolation", profile, model=model, priors=priors, learning_rates=learning_rates, seeds=seeds,
                      steps=steps, batch_size=batch_size, n_tokens=n_tokens, deep_layers=deep_layers,
                      max_length=max_length, eval_size=eval_size, vae_epochs=vae_epochs, out_dir=out_dir)


def plan(profile: str = "cpu") -> list[TrainConfig]:
    """Every config the notebook trains in ``profile``, in the order it asks for them: the grid of its default
    settings (arm x learning rate x seed, :func:`priorlib.compendium.arms.plan`), which ``train_runs`` trains."""
    from priorlib.compendium import arms
    return arms.plan(STEM, profile)


# --------------------------------------------------------------------------------------------- captions
# One builder per figure of notebook 05, fed what the figure is fed; chapter 06 reuses the three on the arms.
def _structure_word(silhouette: float) -> str:
    """Kaufman & Rousseeuw's reading of a silhouette, in the words of the figure's two guide lines."""
    return ("a reasonable structure" if silhouette > SILHOUETTE_REASONABLE else
            "a weak structure" if silhouette > SILHOUETTE_NO_STRUCTURE else "no substantial structure")


def _runs_phrase(df: pd.DataFrame) -> str:
    """How many runs stand behind each arm: ``"3 seeds"``, ``"2-3 seeds"``, ``"3 seeds × 2 learning rates (pooled)"``."""
    per = df.groupby("arm")
    seeds = per["seed"].nunique()
    n = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    text = f"{n} seed{'s' if seeds.max() != 1 else ''}"
    if "lr" in df and df["lr"].nunique() > 1:
        text += f" × {df['lr'].nunique()} learning rates (pooled)"
    return text


def cluster_caption(scores: pd.DataFrame, deep_layers, n_texts: int) -> str:
    """Figure "cluster curves" (:func:`~priorlib.compendium.plots.domains.cluster_curves` of ``scores``):
    what the two panels show, and the median silhouettes that answer "does MATH form its own cluster?".

        cluster_caption(scores, [1, 2, 3], 200)  # "... median silhouette of 0.31 over the 4 layers ..."
    """
    summ = cluster_summary(scores, list(deep_layers))
    m = summ["silhouette_math_vs_nlp_all"]
    return (f"Per-text mean activations ({n_texts} texts per domain, position 0 left out, features z-scored) at "
            f"the input of each layer (x; 0 = token embeddings): left, the silhouette coefficient (−1 to 1) of MATH "
            f"against SQuAD + web text (orange) and of SQuAD against web text (green); right, 5-fold cross-validated "
            f"linear-probe accuracy (%; dotted: majority-class rate); grey bands: the deep-prompt layers "
            f"{', '.join(str(v) for v in deep_layers)}. MATH against SQuAD + web has a median silhouette of "
            f"{m:.2f} over the {summ['n_layers']} layers ({summ['silhouette_math_vs_nlp_deep']:.2f} over the "
            f"deep-prompt layers; {_structure_word(m)} in Kaufman & Rousseeuw's terms) against "
            f"{summ['silhouette_squad_vs_web_all']:.2f} for SQuAD against web text, and is the better-separated "
            f"pair at {summ['layers_math_more_separated']} of {summ['n_layers']} layers.")


def scatter_caption(means: dict, scores: pd.DataFrame, layers) -> str:
    """Figure "domain scatter" (:func:`~priorlib.compendium.plots.domains.domain_scatter` of ``means`` at
    ``layers``): what a point and a panel are, and the silhouettes of the layers drawn."""
    names = np.asarray(means["domains"])[means["domain"].numpy()]
    counts = ", ".join(f"{int((names == d).sum())} {label}" for d, label in
                       (("math", "MATH (orange)"), ("squad", "SQuAD (green)"), ("web", "web-text (blue)"))
                       if d in means["domains"])
    sil = "; ".join(f"layer {layer} {scores.loc[scores.layer == layer, 'silhouette_math_vs_nlp'].item():.2f} / "
                    f"{scores.loc[scores.layer == layer, 'silhouette_squad_vs_web'].item():.2f}" for layer in layers)
    return (f"Per-text mean activations of {counts} texts, one point per text, at the inputs of layers "
            f"{', '.join(str(v) for v in layers)} (one panel each), on that panel's first two principal components "
            f"of the z-scored features (z-units; variance shares on the axes; rows of massive norm dropped). "
            f"Silhouette in the full feature space, MATH against SQuAD + web / SQuAD against web: {sil}.")


def _bars_phrase(df: pd.DataFrame) -> str:
    """What a bar is: the mean and sd over an arm's runs (the one run, when each arm has one)."""
    if df.groupby("arm").size().max() == 1:
        return "bars are the one run of each arm (1 seed, no sd)"
    return f"bars are the mean and sd over {_runs_phrase(df)}, dots single runs"


def _value(mean_sd: tuple[float, float], digits: int, single: bool, unit: str = "") -> str:
    m, sd = mean_sd
    return f"{m:.{digits}f}{unit}" if single else f"{m:.{digits}f} ± {sd:.{digits}f}{unit}"


def _extreme(means: dict, pick, digits: int) -> list[str]:
    """The arms whose mean, at the ``digits`` the caption prints, is the ``pick`` (max / min) of all."""
    shown = {a: round(v[0], digits) for a, v in means.items()}
    top = pick(shown.values())
    return [a for a, v in shown.items() if v == top]


def accuracy_caption(df: pd.DataFrame, steps: int, baseline: str = BASELINE) -> str:
    """Figure "held-out MATH accuracy" (:func:`~priorlib.compendium.plots.posterior.metric_bars` of ``df``'s
    ``final_accuracy`` per arm): bars, dots, and every arm's mean ± sd, the highest against ``baseline``'s."""
    acc = arm_means(df, "final_accuracy")
    single = df.groupby("arm").size().max() == 1
    per = "; ".join(f"{a} {_value(v, 1, single, '%')}" for a, v in acc.items())
    top = _extreme(acc, max, 1)
    out = (f"Held-out MATH accuracy (exact match of the greedy answer, %) after {steps} steps per prior arm: "
           f"{_bars_phrase(df)}. Per arm: {per}; ")
    if len(top) == len(acc) > 1:
        return out + f"every arm scores {acc[top[0]][0]:.1f}%."
    out += f"highest: {', '.join(top)}" + (" (tied)" if len(top) > 1 else "")
    if baseline in acc and baseline not in top:
        out += f", {acc[top[0]][0] - acc[baseline][0]:+.1f} points against {baseline}"
    return out + "."


def val_loss_caption(df: pd.DataFrame, steps: int, baseline: str = BASELINE) -> str:
    """Figure "held-out MATH loss" (``final_val_loss`` per arm): bars, dots, the lowest arm and every arm's
    difference to ``baseline`` (what the verdicts decide on)."""
    loss = arm_means(df, "final_val_loss")
    single = df.groupby("arm").size().max() == 1
    low = _extreme(loss, min, 3)
    out = (f"Validation answer loss on held-out MATH (nats per answer token) after {steps} steps per prior arm: "
           f"{_bars_phrase(df)}. Lowest: {', '.join(low)}{' (tied)' if len(low) > 1 else ''} "
           f"{_value(loss[low[0]], 3, single)}")
    if baseline in loss and len(loss) > 1:
        out += f"; against {baseline}'s {loss[baseline][0]:.3f}: " + ", ".join(
            f"{a} {m - loss[baseline][0]:+.3f}" for a, (m, _) in loss.items() if a != baseline)
    return out + "."


def training_loss_caption(runs, smooth: int = 5, arm=arm_of) -> str:
    """Figure "training loss on MATH" (:func:`~priorlib.compendium.plots.posterior.loss_curves` of ``runs``):
    the curves, where each arm's end (``smooth``-step running mean, averaged over its runs), and how many runs
    stopped at the step cap (``arm``: a config's arm name)."""
    from priorlib.compendium.captions import capped
    finals: dict[str, list[float]] = {}
    for r in runs:
        h = r.history()
        finals.setdefault(arm(r.config), []).append(float(h["loss"].rolling(smooth, min_periods=1).mean().iloc[-1]))
    ends = "; ".join(f"{a} {np.mean(v):.3f}" for a, v in finals.items())
    return (f"Training answer loss on MATH ({smooth}-step running mean, nats per answer token) against the training "
            f"step, one curve per run ({len(runs)} runs, named by arm and seed in the legend). Where the curves end, mean "
            f"per arm: {ends}; {capped(runs)}.")


def quality_sentence(df: pd.DataFrame) -> str:
    """The sentence under the quality figures: the arm with the lowest mean final validation loss, what that
    mean pools (seeds, and learning rates when there are several), each arm's final and initial accuracy."""
    loss, acc = arm_means(df, "final_val_loss"), arm_means(df, "final_accuracy")
    best = min(loss, key=lambda a: loss[a][0])
    part = df[df["arm"] == best]
    n_lr = part["lr"].nunique() if "lr" in part else 1
    pooled = (f"{len(part)} run{'s' if len(part) != 1 else ''}: {part['seed'].nunique()} seed(s) × {n_lr} learning "
              "rates" if n_lr > 1 else f"{part['seed'].nunique()} seed{'s' if part['seed'].nunique() != 1 else ''}")
    initial = df.groupby("arm")["initial_accuracy"].mean() if "initial_accuracy" in df else pd.Series(dtype=float)
    return (f"Lowest final validation loss: **{best}** ({loss[best][0]:.3f} ± {loss[best][1]:.3f} nats/token over "
            f"{pooled}). Final accuracy per arm: " + "; ".join(f"{a} {m:.1f} ± {sd:.1f}%" for a, (m, sd) in acc.items())
            + (". Initial accuracy (untrained prompt): " + "; ".join(f"{a} {m:.1f}%" for a, m in initial.items())
               if len(initial) else "") + ".")


def map_caption(proj, place: pd.DataFrame, n_runs: int) -> str:
    """Caption of the PCA panels (``plots.domains.two_cloud_panels``): what the map is and holds, that its
    distances are not the ones the placement claims use, and those claims' number from the exact figure:
    per arm, the share of trained block vectors closer (Mahalanobis) to the MATH fit than to the web fit."""
    tr = place[place["when"] == "trained"].groupby("arm", sort=False)["share_closer_to_math"].mean()
    closer = "; ".join(f"{ARM_TITLES.get(a, a)} {100 * v:.0f}%" for a, v in tr.items())
    return (f"{proj.description}; the two axes hold {100 * proj.explained[:2].sum():.1f}% of the standardised "
            f"variance; one panel per arm ({n_runs} runs, first seed and rate). A linear map: how far a block sits "
            "from a cloud here is not its Mahalanobis distance, which the figure above gives exactly. Share of "
            f"trained block vectors closer to the MATH fit than to the web fit, mean over seeds: {closer}.")


def placement_caption(place: pd.DataFrame, yardstick: pd.DataFrame, layer: int) -> str:
    """Figure "sampled → trained" (:func:`~priorlib.compendium.plots.domains.placement_arrows`): the axes, an
    arrow, the crosses, and where the trained blocks end against each domain's own rows."""
    tr = place[place["when"] == "trained"].groupby("arm", sort=False)[["maha_math", "maha_web"]].mean()
    ends = "; ".join(f"{a} {r.maha_math:.3g} / {r.maha_web:.3g}" for a, r in tr.iterrows())
    names = {"math": "MATH", "web": "web-text", "squad": "SQuAD"}
    own = "; ".join(f"{names.get(r['rows of'], r['rows of'])} rows {r['maha_math']:.3g} / {r['maha_web']:.3g}"
                    for _, r in yardstick.iterrows())
    runs_ = place.groupby(["arm", "lr", "seed"]).ngroups
    return (f"Median Mahalanobis distance (σ units, symlog axes) of the vectors of the deep block at the input of "
            f"layer {layer} to the Gaussian fitted to MATH activations (x) and to the one fitted to web-text "
            f"activations (y): one arrow per run ({runs_} runs) from the sampled (hollow) to the trained (filled) "
            f"block; crosses: each domain's own rows; above the dashed diagonal a block is closer to MATH. Trained, "
            f"MATH / web distance (mean over runs): {ends}; against {own}.")
