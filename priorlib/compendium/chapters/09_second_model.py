"""Notebook 09: the key claims rerun on a second model.

The main model of this book (SmolLM2-135M-Instruct on a CPU, Llama-3.2-1B on a GPU) is checked
against Gemma-3-270M, a base model of a different family: 18 layers, d = 640, a 262k vocabulary,
input embeddings multiplied by sqrt(d) inside the embedding module, a BOS token the model relies
on, and alternating sliding-window / full-attention layers.

For each model the notebook runs the very same experiments, with the very same rules:

- notebook 02's grid (soft prompts on SQuAD, the four token-space priors, one learning rate, several
  seeds) and its verdicts (``verdicts`` of chapter ``02_lr_priors``): the prior decides
  where trained prompts end; prompts stay near their prior at the paper's rates; final quality is
  the same across priors; trained prompts do not all collapse into the token cloud; no prior
  improves on the sampled-vocabulary init;
- notebook 01's task clusters (``question5`` of chapter ``01_proof_of_concept``, which scores them with the
  book's one cluster measure, :func:`priorlib.metrics.clusters.domain_separation`) and its verdict.

On the main model the runs have the same configs as notebook 02's, so they come from the run store
when notebook 02 has run. :func:`verdicts_09` and :func:`claim_table` put both models' verdicts side by side.
"""
from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from priorlib.compendium import experiments as ex
from priorlib.compendium import chapter
from priorlib.compendium import profiles
from priorlib.compendium import runs as s02
from priorlib.compendium.paths import results_dir
from priorlib.compendium.verdicts import Verdict
from priorlib.config import TrainConfig

STEM = "09_second_model"
CLAIMS = ("The prior decides where trained soft prompts end up (posteriors differ by prior)",
          "Prompts stay near where their prior put them at the paper's learning rates",
          "Final quality is the same whichever prior starts the prompt",
          "Tasks form clusters: MATH apart from NLP, SQuAD close to web text")


@dataclass
class Setup:
    profile: str
    models: tuple[str, ...]
    priors: list[str]
    lr: float
    seeds: list[int]
    out_dir: Path
    settings: dict[str, s02.Settings] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        s = self.settings[self.models[0]]
        rows = {"models": ", ".join(self.models), "priors": ", ".join(self.priors), "learning rate": f"{self.lr:g}",
                "seeds": str(self.seeds), "steps": s.steps, "batch size": s.batch_size, "prompt tokens": s.n_tokens,
                "max length": s.max_length, "held-out SQuAD questions": s.eval_size,
                **{k: v for k, v in s.run_overrides.items()}}
        from priorlib.compendium.tables import result_table
        return result_table(pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]}))


def settings(profile: str = "cpu", *, models=None, priors=None, learning_rate=None, seeds=None, steps=None,
          batch_size=None, eval_size=None, out_dir=None) -> Setup:
    """Resolve the notebook's parameters (None: the profile's default); bad values fail here, before any compute."""
    d = profiles.chapter_defaults(STEM, profile)
    from priorlib.models import check_model_name
    models = tuple(models if models is not None else d["models"])
    if len(models) != 2 or models[0] == models[1]:
        raise ValueError(f"models must be two different registry models, got {list(models)}")
    for m in models:
        check_model_name(m)
    lr = float(learning_rate if learning_rate is not None else d["learning_rate"])
    priors = priors if priors is not None else d.get("priors")
    out = results_dir(STEM, out_dir)
    su = Setup(profile, models, [], lr, [], out)
    for m in models:
        su.settings[m] = s02.settings("02_lr_priors", profile, model=m, priors=priors, learning_rates=[lr], seeds=seeds,
                                      steps=steps, batch_size=batch_size, eval_size=eval_size, out_dir=out)
    first = su.settings[models[0]]
    su.priors, su.seeds = list(first.priors), list(first.seeds)
    return su


def model_title(name: str) -> str:
    return s02.MODEL_NAMES.get(name, name)


# ------------------------------------------------------------------------------------------ per model
def model_configs(su: Setup, name: str) -> list[TrainConfig]:
    """The runs :func:`run_model` trains on model ``name``: notebook 02's grid (its
    :func:`priorlib.compendium.runs.lr_seed_grid`) with that model's settings."""
    S = su.settings[name]
    return s02.lr_seed_grid(S, S.base())


def plan(profile: str = "cpu") -> list[TrainConfig]:
    """Every config the notebook trains in ``profile``, in the order it asks for them: :func:`model_configs`
    of the main model, then of the second, from the default settings (the calls :func:`run_model` makes).
    No model loads (nothing here needs a layer count), nothing trains."""
    from priorlib.compendium.setup import setup
    su = setup(STEM, profile)
    return ex.unique([c for m in su.models for c in model_configs(su, m)])


def embedding_facts(model, reference) -> dict:
    """How the prompt space relates to the stored embedding weight (Gemma scales by sqrt(d))."""
    from priorlib import arch
    emb = arch.embed(model)
    scale = float(getattr(emb, "embed_scale", torch.tensor(1.0)))
    raw = emb.weight.float().norm(dim=-1).median()
    return {"vocab": len(reference), "dim": reference.dim, "embed_scale": scale,
            "median_row_norm_prompt_space": float(reference.vectors.norm(dim=-1).median()),
            "median_row_norm_weight": float(raw), "layers": int(model.config.num_hidden_layers)}


def run_model(name: str, su: Setup, *, log=print) -> dict:
    """Everything one model contributes: notebook 02's grid and verdicts, notebook 01's task clusters."""
    atlas = chapter("01_proof_of_concept")
    from priorlib.batching import bos_ids
    from priorlib.hooks import hook_points
    from priorlib.priors import Reference

    t0 = time.perf_counter()
    S = su.settings[name]
    model, tok = s02.load(S)
    ref = Reference.from_embeddings(model, tok)
    facts = embedding_facts(model, ref)
    facts["bos"] = bool(bos_ids(tok))
    baseline = s02.reference_baseline(ref)
    from priorlib.compendium.plots.posterior import Projection
    proj = Projection(ref.vectors)  # for the scrubber: a PCA of the prompt space, fitted on a row sample
    proj.reference = ref  # the scrubber draws each prompt at its exact Mahalanobis distance under this fit
    runs = ex.run_all(model_configs(su, name), model=model, tokenizer=tok, progress=True)
    train_seconds = time.perf_counter() - t0
    place = s02.placement(runs, ref)
    rows, qtable, target = s02.quality(runs)
    verdicts, numbers = chapter("02_lr_priors").verdicts(rows, place, baseline, S, dim=ref.dim)

    cfg = atlas.settings(su.profile, model=name)
    inputs = atlas.load_inputs(cfg, tok)
    points = hook_points(model, cfg.layers)
    caps = atlas.capture_all(model, tok, inputs, points, cfg)
    q5 = atlas.question5(caps, inputs, points, cfg)
    verdicts = list(verdicts) + [replace(atlas.verdict_q5(q5), claim=CLAIMS[3])]
    del model, caps, ref
    gc.collect()
    log(f"{name}: {len(runs)} runs and the task clusters in {time.perf_counter() - t0:.0f} s")
    return {"name": name, "title": model_title(name), "settings": S, "facts": facts, "baseline": baseline,
            "runs": runs, "projection": proj, "rows": rows, "quality": qtable, "target": target, "placement": place,
            "verdicts": verdicts, "numbers": numbers, "q5": q5, "web_source": inputs["web_source"],
            "train_seconds": train_seconds, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------ comparison
def position_rows(results: list[dict]) -> pd.DataFrame:
    """Sampled and trained median nearest-token distance per run, in units of each model's own
    neighbour gap between token embeddings (so the two models share one scale)."""
    out = []
    for r in results:
        gap = float(r["baseline"]["median_nn_l2"])
        p = r["placement"].copy()
        p.insert(0, "model", r["title"])
        p["nn_l2_in_gaps"] = p["median_nn_l2"] / gap
        p["moved_in_gaps"] = p["moved_l2"] / gap
        out.append(p)
    return pd.concat(out, ignore_index=True)


def position_summary(pos: pd.DataFrame) -> pd.DataFrame:
    """Per model and prior: mean over seeds of the trained distance (in gaps) and of the movement."""
    t = pos[pos["when"] == "trained"]
    g = t.groupby(["model", "prior"])
    out = g[["nn_l2_in_gaps", "median_mahalanobis", "share_in_hdr", "moved_in_gaps"]].mean()
    out["seeds"] = g.size()
    return out.round(3).reset_index()


def prior_effect_ratio(pos: pd.DataFrame) -> dict[str, float]:
    """Per model: spread of the trained distance *between* priors over its spread *within* a prior
    (between seeds). Much larger than 1: the prior, not the seed, decides where the prompt ends."""
    out = {}
    for m, d in pos[pos["when"] == "trained"].groupby("model"):
        means = d.groupby("prior")["nn_l2_in_gaps"].mean()
        within = d.groupby("prior")["nn_l2_in_gaps"].std(ddof=1).dropna()
        w = float(np.sqrt((within ** 2).mean())) if len(within) else float("nan")
        out[m] = float(means.std(ddof=1) / w) if w and np.isfinite(w) and w > 0 else float("nan")
    return out


def position_answer(results: list[dict], pos: pd.DataFrame) -> str:
    """The answer under the posterior-position figure: per model, the verdict of *the prior decides where
    trained prompts end* (notebook 02's rule: Spearman ρ within each learning rate, pooled, rates where the
    optimiser could not move a token gap left out) with its reason, and the spread between priors against
    the spread between seeds (:func:`prior_effect_ratio`, descriptive only)."""
    ratio = prior_effect_ratio(pos)
    parts = []
    for r in results:
        v = next(v for v in r["verdicts"] if v.claim_id == "prior-decides-posterior")
        m = r["title"]
        spread = (f"; the spread between priors is {ratio[m]:.0f}× the spread between seeds"
                  if np.isfinite(ratio.get(m, float("nan"))) else "; one seed: no between-seed spread")
        parts.append(f"on {m}, **{v.outcome.value}** ({v.measured}){spread}")
    return "**Answer** (notebook 02's rule, on each model): " + "; ".join(parts) + "."


def quality_rows(results: list[dict]) -> pd.DataFrame:
    out = []
    for r in results:
        q = r["rows"].copy()
        q.insert(0, "model", r["title"])
        out.append(q)
    return pd.concat(out, ignore_index=True)


def cluster_rows(results: list[dict]) -> pd.DataFrame:
    """Per model and layer: the task-cluster scores, with depth as a share of the model's layers."""
    out = []
    for r in results:
        t = r["q5"]["table"].copy()
        t.insert(0, "model", r["title"])
        t["relative_depth"] = t["depth"] / max(1, int(t["depth"].max()))
        out.append(t)
    return pd.concat(out, ignore_index=True)


# ------------------------------------------------------------------------------------------ captions
QUALITY_TEXT = {  # metric -> (what, unit, unit of a difference, format)
    "final_val_loss": ("final held-out SQuAD validation answer loss", "nats/token", "nats", ".3f"),
    "final_f1": ("final held-out SQuAD F1", "%", "points", ".1f"),
}


def quality_caption(qrows: pd.DataFrame, metric: str) -> str:
    """Caption of a quality-per-prior figure (``plots.models.quality_by_prior(qrows, metric=...)``; ``qrows``:
    :func:`quality_rows`): what a bar and a dot are, and per model the range of the prior means against the
    book's equivalence margin for ``metric``."""
    from priorlib.compendium.margins import MARGINS
    what, unit, dunit, f = QUALITY_TEXT[metric]
    seeds = qrows.groupby(["model", "prior"])["seed"].nunique()
    lo, hi = int(seeds.min()), int(seeds.max())
    n = f"{hi}" if lo == hi else f"{lo}–{hi}"
    parts = []
    for m, d in qrows.groupby("model", sort=False):
        means = d.groupby("prior")[metric].mean()
        spread = means.max() - means.min()
        parts.append(f"on {m} all at {means.min():{f}}" if f"{spread:{f}}" == f"{0:{f}}" else
                     f"on {m} from {means.min():{f}} ({means.idxmin()}) to {means.max():{f}} ({means.idxmax()}), "
                     f"a spread of {spread:{f}} {dunit}")
    margin = f" (equivalence margin ±{MARGINS[metric].margin:g} {dunit})" if metric in MARGINS else ""
    bars = ("bars are the single seed's value (one seed: no sd)" if hi == 1 else
            f"bars are the mean ± sd over {n} seeds, dots single seeds")
    return (f"{what[0].upper() + what[1:]} ({unit}, y) per prior (x), one panel per model: {bars}. The prior means "
            f"run " + "; ".join(parts) + margin + ".")


def clusters_caption(cl: pd.DataFrame) -> str:
    """Caption of the task-separation figure (``plots.models.clusters_over_depth(cl)``; ``cl``:
    :func:`cluster_rows`): what is plotted, and per model the silhouettes at the last layer and the share of
    depths at which MATH vs NLP is the more separated pair (``question5``'s ``share_layers_math_further``)."""
    parts = []
    for m, d in cl.groupby("model", sort=False):
        last = d.loc[d["relative_depth"].idxmax()]
        share = float((d["silhouette_math_vs_nlp"] > d["silhouette_squad_vs_web"]).mean())
        parts.append(f"{m} MATH vs NLP {last['silhouette_math_vs_nlp']:.2f} and SQuAD vs web "
                     f"{last['silhouette_squad_vs_web']:.2f}, MATH the more separated pair at {100 * share:.0f}% of its "
                     f"{len(d)} depths")
    return ("Silhouette (unitless, y; 1: separate clusters, 0: none) of MATH against NLP text (web + SQuAD, left) and "
            "of SQuAD against web text (right), on each sample's z-scored mean activation, against depth as a share of "
            "each model's layers (x: 0 = token embeddings, 1 = last layer); one line per model. At the last layer: "
            + "; ".join(parts) + ".")


def verdicts_09(results: list[dict]) -> list[Verdict]:
    """One verdict per claim across both models: both measurements, each model's outcome (``by_model``),
    and the claim's outcome on both (see :meth:`Verdict.across`)."""
    a, b = results
    names = (a["title"], b["title"])
    out = []
    for va, vb in zip(a["verdicts"], b["verdicts"]):
        if va.claim != vb.claim or va.claim_id != vb.claim_id:
            raise ValueError(f"the two models' verdicts are not aligned: {va.claim!r} vs {vb.claim!r}")
        out.append(Verdict.across(
            f"{va.claim} (on both models)",
            f"{names[0]}: {va.measured} → {va.outcome.value}. {names[1]}: {vb.measured} → {vb.outcome.value}.",
            {names[0]: va.outcome, names[1]: vb.outcome}, claim_id=va.claim_id))
    return out


def claim_table(results: list[dict]) -> pd.DataFrame:
    """One row per claim: each model's measurement and outcome, and on which models it holds."""
    a, b = results
    names = (a["title"], b["title"])
    return pd.DataFrame([{"claim": va.claim, names[0]: f"{va.measured} → {va.outcome.value}",
                          names[1]: f"{vb.measured} → {vb.outcome.value}", "holds on": v.label}
                         for va, vb, v in zip(a["verdicts"], b["verdicts"], verdicts_09(results))])


def scale_sentence(facts: dict, title: str) -> str:
    if math.isclose(facts["embed_scale"], 1.0):
        return (f"{title}: {facts['vocab']:,} token embeddings of dimension {facts['dim']}, used as stored "
                f"(median row norm {facts['median_row_norm_prompt_space']:.3g}).")
    return (f"{title}: {facts['vocab']:,} token embeddings of dimension {facts['dim']}. The embedding module "
            f"multiplies each row by {facts['embed_scale']:.3g} (√{facts['dim']}), so the prompt space — where "
            f"soft prompts sit and where the priors are fitted — has a median row norm of "
            f"{facts['median_row_norm_prompt_space']:.3g}, against {facts['median_row_norm_weight']:.3g} for the "
            f"stored weight." + (" A BOS token sits in front of every sequence, before the soft prompt."
                                 if facts.get("bos") else ""))


def results_record(su: Setup, results: list[dict], seconds: float) -> dict:
    """The chapter's numbers for ``results.json`` (beside the header and verdicts that
    :func:`priorlib.compendium.verdicts.write_results` adds): per model, and the claim table."""
    return {"per_model": {r["name"]: {"facts": r["facts"], "baseline": r["baseline"], "quality": r["quality"],
                                      "runs": r["rows"].drop(columns=["key"]), "placement": r["placement"],
                                      "numbers": r["numbers"],
                                      "q5": {k: r["q5"][k] for k in ("silhouette_math_vs_nlp", "silhouette_squad_vs_web",
                                                                     "probe_math_vs_nlp", "probe_squad_vs_web",
                                                                     "share_layers_math_further")},
                                      "verdicts": r["verdicts"], "seconds": r["seconds"]} for r in results},
            "claim_table": claim_table(results), "seconds": seconds}
