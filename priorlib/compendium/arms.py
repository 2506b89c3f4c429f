"""Notebooks 05 (paper 4.5: MATH activation clusters, interpolation prior) and 06 (paper 4.6: VAE prior).

The notebooks only call these functions and explain the results.

05
  :func:`domain_means` captures per-text mean activations of web text (the C4 stand-in), SQuAD and
  MATH at the input of every layer; :func:`cluster_scores` scores, per layer, how well MATH separates
  from the two NLP domains and SQuAD from web text (:func:`priorlib.metrics.clusters.domain_separation`).
  Deep prompts (the "cut" variant, with the token-level prompt) then train on MATH arithmetic from
  the interpolation prior between the MATH and web-text Gaussians and from baselines
  (:data:`ARMS`); :func:`two_cloud_placement` says where the trained blocks sit relative to both fits.

06
  :func:`vae_sweep` trains the VAE prior on last-layer-input activations of MATH over a grid of KL
  weights and variance-matching penalties and reports the collapse diagnostics; the VAE arms of
  :data:`ARMS` train deep prompts from its samples.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from priorlib.compendium import experiments
from priorlib.config import TrainConfig
from priorlib.compendium import profiles
from priorlib.compendium.paths import results_dir

DOMAINS = ("web", "squad", "math")

# Every arm shares the token-level prompt's prior (a Gaussian fitted to the token embeddings), so the
# arms differ only in where the activation-level (deep) blocks start. Notebook 05 trains the deep blocks
# with the token-level prompt (as the paper's section 4.5); notebook 06 trains the deep blocks alone, so
# that only the VAE-sampled vectors move (and the frozen lower layers are computed once per example).
TOKEN_PRIOR = "fitted-gaussian"
TOKEN_PROMPT = {"05_math_interpolation": True, "06_vae": False}
VAE_EPOCHS = 30        # the VAE arms' default training epochs (each profile sets its own: profiles.py)
ARMS: dict[str, dict] = {
    # interpolation between the MATH fit (weight alpha) and the web-text fit (weight 1 - alpha)
    "interp-0.5": {"deep_prior": "interpolation", "deep_prior_params": {"alpha": "0.5"}, "interpolate_with": "web"},
    "interp-uniform": {"deep_prior": "interpolation", "deep_prior_params": {"alpha": "uniform"},
                       "interpolate_with": "web"},
    "fitted-gaussian": {"deep_prior": "fitted-gaussian", "deep_prior_params": {}},
    "xavier": {"deep_prior": "xavier", "deep_prior_params": {}},
    # VAE on the layer's MATH activations: the plain beta-VAE, and one with the variance-matching penalty
    "vae": {"deep_prior": "vae", "deep_prior_params": {"beta": "1.0", "var_match": "0.0", "epochs": str(VAE_EPOCHS)}},
    "vae-varmatch": {"deep_prior": "vae", "deep_prior_params": {"beta": "1.0", "var_match": "10.0",
                                                                "epochs": str(VAE_EPOCHS)}},
}
ARM_TITLES = {
    "interp-0.5": "interpolation MATH/web, α = 0.5",
    "interp-uniform": "interpolation MATH/web, α ~ U[0, 1]",
    "fitted-gaussian": "fitted Gaussian (MATH)",
    "xavier": "Xavier",
    "vae": "VAE (β = 1, no variance penalty)",
    "vae-varmatch": "VAE (β = 1, variance penalty 10)",
}

# a VAE counts as collapsed when fewer than a quarter of its latent units carry information, or when
# its decoded prior samples keep less than a quarter of the data's variance
COLLAPSE_ACTIVE_SHARE = 0.25
COLLAPSE_VARIANCE_RATIO = 0.25


# ------------------------------------------------------------------------------------------ setup
@dataclass
class Setup:
    """What one notebook runs: the resolved parameters and the configs of its grid."""
    profile: str
    base: TrainConfig
    arms: tuple[str, ...]
    learning_rates: tuple[float, ...]
    seeds: tuple[int, ...]
    out_dir: Path
    n_texts: int
    vae_epochs: int = 30
    sweep_betas: tuple[float, ...] = ()
    sweep_var_match: tuple[float, ...] = ()
    configs: list[TrainConfig] = field(default_factory=list)

    def describe(self) -> str:
        b = self.base
        return (f"profile **{self.profile}**: model `{b.model}`, {b.steps} steps of batch {b.batch_size}, "
                f"{b.n_tokens} prompt tokens, deep layers {list(b.deep_layers)} (cut, "
                f"{'with' if b.token_prompt else 'without'} the token-level prompt), lr {list(self.learning_rates)}, "
                f"seeds {list(self.seeds)}, {b.eval_size} held-out MATH problems, "
                f"{self.n_texts} texts per domain for activation statistics")


def setup(stem: str, profile: str = "cpu", *, model=None, priors=None, learning_rates=None, seeds=None,
          steps=None, batch_size=None, n_tokens=None, deep_layers=None, max_length=None, eval_size=None,
          vae_epochs=None, sweep_betas=None, sweep_var_match=None, out_dir=None) -> Setup:
    """Resolve the parameters of chapter ``stem`` (05 or 06; ``None``: the profile's default) into a :class:`Setup`."""
    if stem not in TOKEN_PROMPT:
        raise ValueError(f"the deep-prompt arms belong to chapters {list(TOKEN_PROMPT)}, not {stem!r}")
    prof = profiles.run_sizes(profile)
    d = profiles.chapter_defaults(stem, profile)
    arms = tuple(priors if priors is not None else d["priors"])
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown prior arm(s) {unknown}; choose from {list(ARMS)}")
    lrs = tuple(float(x) for x in (learning_rates if learning_rates is not None else prof.learning_rates))
    seeds = tuple(int(s) for s in (seeds if seeds is not None else prof.seeds))
    base = experiments.base_config(
        prof, model=model, steps=steps, batch_size=batch_size, n_tokens=n_tokens, max_length=max_length,
        eval_size=eval_size, task="math", method="deep", deep_mode="cut", token_prompt=TOKEN_PROMPT[stem],
        deep_layers=tuple(deep_layers) if deep_layers is not None else (-3, -2, -1), prior=TOKEN_PRIOR,
        generate_initial=True)  # the tables show accuracy before and after (MATH answers decode cheaply)
    if steps is not None:  # keep the profile's cadence sensible for short runs
        base.checkpoint_every = base.eval_every = max(1, min(base.checkpoint_every, base.steps // 4 or 1))
        base.warmup_steps = max(1, base.steps // 10)
    out_dir = results_dir(stem, out_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pick = {k: v if v is not None else d.get(k, ()) for k, v in
            (("vae_epochs", vae_epochs), ("sweep_betas", sweep_betas), ("sweep_var_match", sweep_var_match))}
    s = Setup(profile, base, arms, lrs, seeds, out, n_texts=base.reference_texts, vae_epochs=int(pick["vae_epochs"]),
              sweep_betas=tuple(float(x) for x in pick["sweep_betas"]),
              sweep_var_match=tuple(float(x) for x in pick["sweep_var_match"]))
    s.configs = experiments.grid(base, arm=[arm_fields(a, s.vae_epochs) for a in arms], lr=list(lrs),
                                 seed=list(seeds))
    return s


def arm_fields(name: str, vae_epochs: int = 30) -> dict:
    """The config fields of arm ``name`` (VAE arms get the profile's number of VAE epochs)."""
    d = json.loads(json.dumps(ARMS[name]))
    if d["deep_prior"] == "vae":
        d["deep_prior_params"]["epochs"] = str(int(vae_epochs))
    return d


def arm_of(config: TrainConfig) -> str:
    """The :data:`ARMS` name a config belongs to."""
    def strip(v):
        return {k: x for k, x in v.items() if k != "epochs"} if isinstance(v, dict) else v
    for name, fields in ARMS.items():
        if all(_norm(strip(getattr(config, k))) == _norm(strip(v)) for k, v in fields.items()):
            return name
    raise ValueError(f"config {config.key()} belongs to no arm")


def _norm(v):
    return json.dumps(v, sort_keys=True, default=str)


def load_model(config: TrainConfig):
    from priorlib.config import Precision
    from priorlib.models import load_model as _load
    dtype = torch.bfloat16 if config.precision is Precision.BF16 else torch.float32
    return _load(config.model, dtype=dtype, device=config.device, attn_implementation=config.attn_implementation)


# ------------------------------------------------------------------------------ 05: domain clusters


# ------------------------------------------------------------------------- runs, quality, placement
def train_runs(s: Setup, model, tok, progress: bool = True):
    """Every run of the grid (``s.configs``: arm x learning rate x seed), from the bank, the store or trained."""
    return experiments.run_all(s.configs, model=model, tokenizer=tok, progress=progress)


def plan(stem: str, profile: str = "cpu") -> list[TrainConfig]:
    """Every config notebook ``stem`` (05 or 06) trains in ``profile``, in the order it asks for them: the
    ``configs`` of its default :func:`setup`, which :func:`train_runs` hands to ``run_all``. No model loads
    (the deep layers stay negative indices in the configs), nothing trains."""
    from priorlib.compendium.setup import setup as chapter_setup
    return experiments.unique(chapter_setup(stem, profile).configs)


def rows(runs) -> pd.DataFrame:
    df = experiments.run_rows(runs, fields=("lr", "seed"))
    df.insert(0, "arm", [arm_of(r.config) for r in runs])
    return df


def quality(df: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds per arm (and lr): final MATH accuracy (%), val loss, and their change."""
    df = df.copy()
    df["val_loss_drop"] = df["initial_val_loss"] - df["final_val_loss"]
    q = experiments.quality_table(df, by=("arm", "lr"),
                                  metrics=("final_accuracy", "initial_accuracy", "final_val_loss",
                                           "initial_val_loss", "val_loss_drop"))
    return q


def arm_means(df: pd.DataFrame, metric: str) -> dict[str, tuple[float, float]]:
    """``{arm: (mean, sd over seeds)}`` of ``metric`` (all learning rates pooled), for tables and captions;
    verdicts compare arms with :mod:`priorlib.compendium.decide`."""
    g = df.groupby("arm")[metric]
    sd = g.std(ddof=1).fillna(0.0)
    return {a: (float(m), float(sd[a])) for a, m in g.mean().items()}


def learning_rates(df: pd.DataFrame) -> list:
    """The distinct learning rates of ``df`` (``[None]`` without an ``lr`` column)."""
    return sorted({float(x) for x in df["lr"]}) if "lr" in df and len(df) else [None]


def _at(df: pd.DataFrame, lr) -> pd.DataFrame:
    return df if lr is None else df[np.isclose(df["lr"].astype(float), lr)]


def usable(df: pd.DataFrame, arm: str, baseline: str, measure: str = "final_val_loss") -> tuple:
    """``(outcome, reason)``: is ``arm`` a usable prior? Every seed's ``measure`` falls during training
    and the arm is not worse than ``baseline`` (:func:`priorlib.compendium.decide.not_worse`), at each
    learning rate of ``df`` separately (runs at different rates are not seeds of one arm), all of which
    must agree (:func:`priorlib.compendium.decide.every`)."""
    from priorlib.compendium import decide
    from priorlib.protocol import Outcome
    lrs = learning_rates(df)
    results = []
    for lr in lrs:
        d = _at(df, lr)
        at = "" if len(lrs) == 1 else f" at lr {lr:g}"
        part = d[d["arm"] == arm]
        initial = "initial_" + measure.removeprefix("final_")
        if initial in part and not bool((part[initial] > part[measure]).all()):
            results.append((Outcome.CONTRADICTS, f"{arm}{at}: the {measure} of some seed did not fall"))
            continue
        outcome, reason = decide.not_worse(decide.arm(d, measure, arm, arm=arm),
                                           decide.arm(d, measure, baseline, arm=baseline), measure)
        results.append((outcome, f"{arm} minus {baseline}{at}: {reason}"))
    if len(results) == 1:
        return results[0]
    return decide.every(o for o, _ in results), "; ".join(r for _, r in results)


def same_as(df: pd.DataFrame, arm: str, baseline: str, measure: str = "final_val_loss"):
    """:func:`priorlib.compendium.decide.same_quality` of ``arm`` against ``baseline`` on ``measure``, at
    each learning rate of ``df`` separately; with several, the comparison whose outcome is the combined one
    (:func:`priorlib.compendium.decide.every`), its reason listing every rate's."""
    import dataclasses

    from priorlib.compendium import decide
    lrs = learning_rates(df)
    tests = [decide.same_quality(decide.arm(_at(df, lr), measure, arm, arm=arm),
                                 decide.arm(_at(df, lr), measure, baseline, arm=baseline), measure) for lr in lrs]
    if len(tests) == 1:
        return tests[0]
    outcome = decide.every(t.outcome for t in tests)
    pick = next(t for t in tests if t.outcome is outcome)
    return dataclasses.replace(pick, outcome=outcome, reason="; ".join(
        f"lr {lr:g}: {t.outcome.value}, {t.reason}" for lr, t in zip(lrs, tests)))


def domain_references(model, tok, config: TrainConfig, layer: int, domains=("math", "web")) -> dict:
    """The activation references of the deep block at ``layer`` (the same cached captures the priors use)."""
    from priorlib import arch
    from priorlib.initial import activation_reference
    from priorlib.tasks import domain_texts
    (layer,) = arch.resolve_layers(model, [layer])
    point = f"layers.{layer}.resid_pre"
    return {d: activation_reference(model, tok, domain_texts(d, config.reference_texts), point,
                                    model_name=config.model, max_length=config.max_length,
                                    name=f"{d} activations, input of layer {layer}")
            for d in domains}


def deep_key(model, layer: int) -> str:
    from priorlib import arch
    (layer,) = arch.resolve_layers(model, [layer])
    return f"deep.{layer}"


# --------------------------------------------------------------------------------------- 06: VAE


def collapse_kind(active_units: int, latent_dim: int, variance_ratio: float) -> str:
    """``"posterior"`` (latents carry no information), ``"samples"`` (decoded samples lost the data's
    spread), ``"both"`` or ``"none"``."""
    post = active_units < COLLAPSE_ACTIVE_SHARE * latent_dim
    samp = variance_ratio < COLLAPSE_VARIANCE_RATIO
    return {(True, True): "both", (True, False): "posterior", (False, True): "samples"}.get((post, samp), "none")


def is_collapsed(active_units: int, latent_dim: int, variance_ratio: float) -> bool:
    return collapse_kind(active_units, latent_dim, variance_ratio) != "none"


# ------------------------------------------------------------------------------------------ words
def model_note(model_name: str) -> str:
    if model_name == "smollm2-135m":
        return ("SmolLM2-135M-Instruct stands in for the paper's Llama-3.2-1B. It is an instruction-tuned "
                "(SFT + DPO) 135M model and weak at arithmetic, so absolute MATH accuracies are low.")
    if model_name == "tiny-random-llama":
        return ("This is the **smoke** profile: a 4-layer model with random weights checks the plumbing; "
                "none of its numbers mean anything about the paper.")
    if model_name == "llama-3.2-1b":
        return "Llama-3.2-1B, the paper's model."
    return f"Model: `{model_name}` (the paper used Llama-3.2-1B)."
