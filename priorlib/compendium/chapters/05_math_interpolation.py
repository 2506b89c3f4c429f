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


def verdict(summ: dict, controls: dict[str, dict], df: pd.DataFrame, *, seps: dict) -> tuple[list[Verdict], dict]:
    """The closing verdicts of notebook 05 and the numbers behind them (rules: ``margins.RULES``).

    ``seps`` is :func:`domain_clusters` at the last deep-prompt layer: MATH forms its own cluster when
    MATH vs NLP is separated; SQuAD and web text share one when SQuAD vs web is shown *not* to be
    (:func:`decide.opposite`). An interpolation arm is usable when :func:`usable` against the
    fitted-Gaussian arm agrees, for every interpolation arm.
    """
    loss = arm_means(df, "final_val_loss")
    acc = arm_means(df, "final_accuracy") if "final_accuracy" in df else {}
    drop = arm_means(df.assign(d=df["initial_val_loss"] - df["final_val_loss"]), "d")
    ctrl = "; ".join(f"{k}: {v['silhouette_math_vs_nlp_all']:.2f} / {v['silhouette_squad_vs_web_all']:.2f}"
                     for k, v in controls.items())
    strength = ("reasonable" if summ["silhouette_math_vs_nlp_all"] > SILHOUETTE_REASONABLE else
                "weak" if summ["silhouette_math_vs_nlp_all"] > SILHOUETTE_NO_STRUCTURE else "not substantial")
    math_sep, squad_sep = seps["math_vs_nlp"], seps["squad_vs_web"]
    rows = [Verdict(
        "MATH activations form their own cluster",
        f"MATH vs SQuAD+web at the last deep-prompt layer: {math_sep.reason}. Over all {summ['n_layers']} layers: "
        f"median silhouette {summ['silhouette_math_vs_nlp_all']:.2f}, higher than SQuAD vs web at "
        f"{summ['layers_math_more_separated']} of {summ['n_layers']} layers, linear probe "
        f"{100 * summ['probe_math_vs_nlp_all']:.0f}%; in Kaufman & Rousseeuw's words the structure is {strength}. "
        f"Controls, MATH-vs-NLP / SQuAD-vs-web median silhouette: {ctrl or 'none'}",
        math_sep.outcome, claim_id="math-own-cluster"), Verdict(
        "SQuAD activations do not diverge far from C4 (here a web-text stand-in): one cluster",
        f"SQuAD vs web at the last deep-prompt layer: {squad_sep.reason} (one cluster: not separated beyond the null); "
        f"median silhouette over layers {summ['silhouette_squad_vs_web_all']:.2f}, linear probe "
        f"{100 * summ['probe_squad_vs_web_all']:.0f}%",
        decide.opposite(squad_sep.outcome), claim_id="squad-near-web")]
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
    numbers = {"final_val_loss": loss, "final_accuracy": acc, "val_loss_drop": drop,
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
