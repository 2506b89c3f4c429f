"""Notebooks 05 (paper 4.5: MATH activation clusters, interpolation prior) and 06 (paper 4.6: VAE prior).

The notebooks only call these functions and explain the results.

05
  :func:`domain_means` captures per-text mean activations of web text (the C4 stand-in), SQuAD and
  MATH at the input of every layer; :func:`cluster_scores` scores, per layer, how well MATH separates
  from the two NLP domains and SQuAD from web text (silhouette and a cross-validated linear probe).
  Deep prompts (the "cut" variant, with the token-level prompt) then train on MATH arithmetic from
  the interpolation prior between the MATH and web-text Gaussians and from baselines
  (:data:`ARMS`); :func:`two_cloud_placement` says where the trained blocks sit relative to both fits.

06
  :func:`vae_sweep` trains the VAE prior on last-layer-input activations of MATH over a grid of KL
  weights and variance-matching penalties and reports the collapse diagnostics; the VAE arms of
  :data:`ARMS` train deep prompts from its samples.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import experiments
from ..config import TrainConfig

DOMAINS = ("web", "squad", "math")

# Every arm shares the token-level prompt's prior (a Gaussian fitted to the token embeddings), so the
# arms differ only in where the activation-level (deep) blocks start. Notebook 05 trains the deep blocks
# with the token-level prompt (as the paper's section 4.5); notebook 06 trains the deep blocks alone, so
# that only the VAE-sampled vectors move (and the frozen lower layers are computed once per example).
TOKEN_PRIOR = "fitted-gaussian"
TOKEN_PROMPT = {"05": True, "06": False}
VAE_EPOCHS = 30        # VAE training epochs (cpu / paper); the smoke profile uses a few
VAE_EPOCHS_SMOKE = 2
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
DEFAULT_ARMS = {"05": ("interp-0.5", "interp-uniform", "fitted-gaussian", "xavier"),
                "06": ("vae", "vae-varmatch", "fitted-gaussian")}

# Kaufman & Rousseeuw's reading of the silhouette coefficient
SILHOUETTE_NO_STRUCTURE = 0.25   # <= 0.25: no substantial cluster structure
SILHOUETTE_REASONABLE = 0.50     # > 0.50: a reasonable cluster structure

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


def setup(notebook: str, profile: str = "cpu", *, model=None, priors=None, learning_rates=None, seeds=None,
          steps=None, batch_size=None, n_tokens=None, deep_layers=None, max_length=None, eval_size=None,
          out_dir=None) -> Setup:
    """Resolve the notebook parameters (``None``: the profile's default) into a :class:`Setup`."""
    if notebook not in DEFAULT_ARMS:
        raise ValueError(f"notebook must be '05' or '06', got {notebook!r}")
    prof = experiments.get_profile(profile)
    arms = tuple(priors) if priors is not None else DEFAULT_ARMS[notebook]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown prior arm(s) {unknown}; choose from {list(ARMS)}")
    lrs = tuple(float(x) for x in (learning_rates if learning_rates is not None else prof.learning_rates))
    seeds = tuple(int(s) for s in (seeds if seeds is not None else prof.seeds))
    base = experiments.base_config(
        prof, model=model, steps=steps, batch_size=batch_size, n_tokens=n_tokens, max_length=max_length,
        eval_size=eval_size, task="math", method="deep", deep_mode="cut", token_prompt=TOKEN_PROMPT[notebook],
        deep_layers=tuple(deep_layers) if deep_layers is not None else (-3, -2, -1), prior=TOKEN_PRIOR)
    if steps is not None:  # keep the profile's cadence sensible for short runs
        base.checkpoint_every = base.eval_every = max(1, min(base.checkpoint_every, base.steps // 4 or 1))
        base.warmup_steps = max(1, base.steps // 10)
    if out_dir is None:
        from ..book import repo_root
        try:
            root = repo_root()
        except FileNotFoundError:
            root = Path.cwd()
        out_dir = root / "_build" / "results" / ("05_math_interpolation" if notebook == "05" else "06_vae")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    smoke = profile == "smoke"
    s = Setup(profile, base, arms, lrs, seeds, out, n_texts=base.reference_texts,
              vae_epochs=VAE_EPOCHS_SMOKE if smoke else VAE_EPOCHS,
              sweep_betas=SWEEP_BETAS_SMOKE if smoke else SWEEP_BETAS,
              sweep_var_match=SWEEP_VAR_MATCH_SMOKE if smoke else SWEEP_VAR_MATCH)
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
    from ..config import Precision
    from ..models import load_model as _load
    dtype = torch.bfloat16 if config.precision is Precision.BF16 else torch.float32
    return _load(config.model, dtype=dtype, device=config.device, attn_implementation=config.attn_implementation)


# ------------------------------------------------------------------------------------------ cache
def _cache_file(name: str, params: dict) -> Path:
    from ..models import cache_dir
    key = hashlib.sha256(json.dumps({"name": name, "params": params}, sort_keys=True, default=str).encode())
    path = cache_dir() / "sections" / f"{name}-{key.hexdigest()[:20]}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _cached_tensors(name: str, params: dict, compute) -> dict[str, torch.Tensor]:
    """``compute() -> {name: Tensor}``, stored once per ``params`` (atomic write, safetensors)."""
    from safetensors.torch import load_file, save_file
    path = _cache_file(name, params)
    if path.exists() and not os.environ.get("PRIORLIB_NO_CACHE"):
        return load_file(str(path))
    out = compute()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file({k: v.contiguous() for k, v in out.items()}, str(tmp))
    tmp.replace(path)
    return out


# ------------------------------------------------------------------------------ 05: domain clusters
@torch.no_grad()
def _masked_means(model, tok, texts: list[str], points: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """``{"skip_first", "all_tokens"}: [n_points, n_texts, d]``: mean over each text's real tokens,
    without and with position 0, from one forward pass per batch."""
    from ..hooks import iter_activations
    out = {}
    for acts, mask, _, idx in iter_activations(model, tok, texts, points, max_length=max_length, progress=False):
        skip = mask.clone()
        skip[:, 0] = False
        skip[skip.sum(1) == 0, 0] = True  # a one-token text keeps its only token
        for name, m in (("skip_first", skip), ("all_tokens", mask)):
            w = m[..., None].float()
            for j, p in enumerate(points):
                a = acts[p]  # [B, T, d]
                if name not in out:
                    out[name] = torch.empty(len(points), len(texts), a.shape[-1])
                out[name][j, idx] = ((a * w).sum(1) / w.sum(1)).cpu()
    return out


def domain_means(model, tok, *, model_name: str, n_texts: int, max_length: int = 128,
                 domains=DOMAINS) -> dict:
    """Per-text mean activations at the input of every layer, for each domain.

    Returns ``{"layers": [L], "domain": [N] (index into domains), variant: [L, N, d]}`` with variants
    ``"skip_first"`` (mean over tokens 1.. — the first position of a causal LM carries an
    attention-sink vector of very large norm, whose weight 1/T would otherwise encode text length),
    ``"all_tokens"`` (mean over all tokens, as ``capture(reduce="mean")``) and ``"short"`` (tokens
    1..24 only, so every domain averages over about as many tokens as a MATH problem has).
    """
    from .. import arch
    from ..tasks import domain_texts

    n_layers = arch.n_layers(model)
    points = [f"layers.{i}.resid_pre" for i in range(n_layers)]

    def compute_all():
        texts, labels = [], []
        for k, d in enumerate(domains):
            t = domain_texts(d, n_texts)
            texts += t
            labels += [k] * len(t)
        full = _masked_means(model, tok, texts, points, max_length)
        return {"layers": torch.arange(n_layers), "domain": torch.tensor(labels), **full,
                "short": _masked_means(model, tok, texts, points, 25)["skip_first"]}

    params = {"model": model_name, "n_texts": n_texts, "max_length": max_length, "domains": list(domains),
              "version": 1}
    out = dict(_cached_tensors("s05-domain-means", params, compute_all))
    out["domains"] = list(domains)
    out["cache_params"] = params
    return out


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def cluster_scores(means: dict, variant: str = "skip_first", folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Cached :func:`_cluster_scores` (the probes take a while on a shared CPU)."""
    params = {"means": means.get("cache_params"), "variant": variant, "folds": folds, "seed": seed, "version": 1}
    if params["means"] is None:
        return _cluster_scores(means, variant, folds, seed)
    got = _cached_tensors("s05-cluster-scores", params, lambda: {
        k: torch.tensor(v.to_numpy(), dtype=torch.float64)
        for k, v in _cluster_scores(means, variant, folds, seed).items()})
    df = pd.DataFrame({k: v.numpy() for k, v in got.items()})
    df["layer"] = df["layer"].astype(int)
    return df[["layer"] + sorted(c for c in df if c != "layer")]


def _cluster_scores(means: dict, variant: str = "skip_first", folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """Per layer: silhouette and linear-probe accuracy for MATH vs NLP (SQuAD + web) and SQuAD vs web.

    Features are z-scored per dimension over the texts compared (a few residual dimensions are
    orders of magnitude larger than the rest and would otherwise decide every distance). The
    silhouette uses Euclidean distance; the probe is an L2-regularised logistic regression scored by
    stratified ``folds``-fold cross-validation (chance: the majority share).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    doms = means["domains"]
    lab = means["domain"].numpy()
    x_all = means[variant].float().numpy()  # [L, N, d]
    is_math = lab == doms.index("math")
    nlp = np.isin(lab, [doms.index("squad"), doms.index("web")])
    rows = []
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for i, layer in enumerate(means["layers"].tolist()):
        row = {"layer": layer}
        for name, keep, y in (("math_vs_nlp", np.ones_like(is_math), is_math.astype(int)),
                              ("squad_vs_web", nlp, (lab == doms.index("squad")).astype(int))):
            x = _standardise(x_all[i][keep])
            yy = y[keep]
            row[f"silhouette_{name}"] = float(silhouette_score(x, yy, metric="euclidean"))
            clf = LogisticRegression(C=0.1, max_iter=2000)
            row[f"probe_{name}"] = float(cross_val_score(clf, x, yy, cv=cv).mean())
            row[f"chance_{name}"] = float(max(yy.mean(), 1 - yy.mean()))
        rows.append(row)
    return pd.DataFrame(rows)


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


# ------------------------------------------------------------------------- runs, quality, placement
def train_runs(s: Setup, model, tok, progress: bool = True):
    return experiments.run_all(s.configs, model=model, tokenizer=tok, progress=progress)


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
    """``{arm: (mean, sd over seeds)}`` of ``metric`` (all learning rates pooled)."""
    g = df.groupby("arm")[metric]
    sd = g.std(ddof=1).fillna(0.0)
    return {a: (float(m), float(sd[a])) for a, m in g.mean().items()}


def domain_references(model, tok, config: TrainConfig, layer: int, domains=("math", "web")) -> dict:
    """The activation references of the deep block at ``layer`` (the same cached captures the priors use)."""
    from .. import arch
    from ..init import activation_reference
    from ..tasks import domain_texts
    (layer,) = arch.resolve_layers(model, [layer])
    point = f"layers.{layer}.resid_pre"
    return {d: activation_reference(model, tok, domain_texts(d, config.reference_texts), point,
                                    model_name=config.model, max_length=config.max_length,
                                    name=f"{d} activations, input of layer {layer}")
            for d in domains}


def deep_key(model, layer: int) -> str:
    from .. import arch
    (layer,) = arch.resolve_layers(model, [layer])
    return f"deep.{layer}"


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


# --------------------------------------------------------------------------------------- 06: VAE
SWEEP_BETAS = (0.25, 1.0, 4.0, 16.0)
SWEEP_VAR_MATCH = (0.0, 1.0, 10.0)
SWEEP_BETAS_SMOKE = (1.0, 16.0)
SWEEP_VAR_MATCH_SMOKE = (0.0, 10.0)


def collapse_kind(active_units: int, latent_dim: int, variance_ratio: float) -> str:
    """``"posterior"`` (latents carry no information), ``"samples"`` (decoded samples lost the data's
    spread), ``"both"`` or ``"none"``."""
    post = active_units < COLLAPSE_ACTIVE_SHARE * latent_dim
    samp = variance_ratio < COLLAPSE_VARIANCE_RATIO
    return {(True, True): "both", (True, False): "posterior", (False, True): "samples"}.get((post, samp), "none")


def is_collapsed(active_units: int, latent_dim: int, variance_ratio: float) -> bool:
    return collapse_kind(active_units, latent_dim, variance_ratio) != "none"


def vae_sweep(reference, betas, var_matches, *, epochs: int | str = VAE_EPOCHS, seed: int = 0) -> pd.DataFrame:
    """Train (or load from the VAE cache) one VAE per ``(beta, var_match)`` on ``reference`` and
    measure collapse: active latent units (KL_j > 0.01 nats), decoded-sample / data variance,
    reconstruction error (standardised units) and the total KL."""
    from ..priors.vae import VAEParams, load_or_train_vae, vae_diagnostics
    out = []
    for beta in betas:
        for vm in var_matches:
            p = VAEParams(beta=float(beta), var_match=float(vm), epochs=int(epochs))
            vae = load_or_train_vae(reference, p)
            d = vae_diagnostics(vae, reference.vectors, torch.Generator().manual_seed(seed))
            out.append({"beta": float(beta), "var_match": float(vm), "active_units": d["active_units"],
                        "latent_dim": d["latent_dim"], "variance_ratio": d["variance_ratio"],
                        "recon_mse": d["recon_mse"], "kl_total": float(d["kl_per_dim"].sum()),
                        "collapsed": is_collapsed(d["active_units"], d["latent_dim"], d["variance_ratio"]),
                        "collapse": collapse_kind(d["active_units"], d["latent_dim"], d["variance_ratio"])})
    return pd.DataFrame(out)


def kl_settings(s: Setup) -> list[tuple[float, float]]:
    """The VAEs whose KL profile is drawn: every swept β without the penalty, and β = 1 with the largest γ."""
    out = [(b, 0.0) for b in s.sweep_betas if 0.0 in s.sweep_var_match]
    if 1.0 in s.sweep_betas and max(s.sweep_var_match) > 0:
        out.append((1.0, max(s.sweep_var_match)))
    return out


def kl_profiles(reference, settings, *, epochs: int | str = VAE_EPOCHS, seed: int = 0) -> dict:
    """``{"β=…, γ=…": KL per latent unit [latent]}`` for a few (beta, var_match) settings (cached VAEs)."""
    from ..priors.vae import VAEParams, load_or_train_vae, vae_diagnostics
    out = {}
    for beta, vm in settings:
        vae = load_or_train_vae(reference, VAEParams(beta=float(beta), var_match=float(vm), epochs=int(epochs)))
        d = vae_diagnostics(vae, reference.vectors, torch.Generator().manual_seed(seed))
        out[f"β={beta:g}, γ={vm:g}"] = d["kl_per_dim"]
    return out


def collapse_findings(sweep: pd.DataFrame) -> dict:
    """Which settings collapse, and the numbers of the plain VAE (beta = 1, no penalty)."""
    plain = sweep[(sweep["beta"] == 1.0) & (sweep["var_match"] == 0.0)]
    plain = plain.iloc[0].to_dict() if len(plain) else None
    nopen = sweep[sweep["var_match"] == 0.0].sort_values("beta")
    first_beta = nopen[nopen["collapsed"]]["beta"].min() if nopen["collapsed"].any() else None
    return {"n_settings": int(len(sweep)), "n_collapsed": int(sweep["collapsed"].sum()),
            "plain": plain, "smallest_collapsing_beta_without_penalty":
                None if first_beta is None or (isinstance(first_beta, float) and math.isnan(first_beta))
                else float(first_beta),
            "collapsed_settings": [(float(b), float(v)) for b, v in
                                   sweep[sweep["collapsed"]][["beta", "var_match"]].itertuples(index=False)],
            "by_beta_without_penalty": {float(r["beta"]): r.get("collapse", "collapsed" if r["collapsed"] else "none")
                                        for _, r in nopen.iterrows()}}


def describe_collapse(findings: dict) -> str:
    """One sentence: which settings collapse, and how, as β grows without the penalty."""
    parts = [f"β = {b:g}: {'no collapse' if k == 'none' else k + ' collapse'}"
             for b, k in findings["by_beta_without_penalty"].items()]
    settings = ", ".join(f"({b:g}, {v:g})" for b, v in findings["collapsed_settings"]) or "none"
    return (f"{findings['n_collapsed']} of {findings['n_settings']} (β, γ) settings collapse: {settings}. "
            "Without the variance penalty (γ = 0): " + "; ".join(parts) + ".")


def sample_spread(x: torch.Tensor) -> float:
    """Median pairwise L2 distance between the rows of ``x`` (how varied a set of prompt vectors is)."""
    d = torch.cdist(x.float(), x.float())
    iu = torch.triu_indices(len(x), len(x), 1)
    return float(d[iu[0], iu[1]].median())


def vae_placement(runs, ref, key: str) -> pd.DataFrame:
    """:func:`experiments.placement_rows` against the MATH reference plus the spread of the vectors
    relative to the reference rows' own spread (a collapsed prior draws near-identical vectors)."""
    place = experiments.placement_rows(runs, ref, key=key, fields=("lr", "seed"))
    place.insert(0, "arm", [arm_of(r.config) for r in runs for _ in (0, 1)])
    g = torch.Generator().manual_seed(0)
    ref_spread = sample_spread(ref.vectors[torch.randperm(len(ref), generator=g)[:512]])
    spreads = []
    for r in runs:
        ck = r.checkpoints()
        spreads += [sample_spread(ck[0][1][key]) / ref_spread, sample_spread(ck[-1][1][key]) / ref_spread]
    place["spread_vs_reference"] = spreads
    return place


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


def _same(a: tuple[float, float], b: tuple[float, float], n_seeds: int) -> bool | None:
    """Two arms' (mean, sd) count as the same when their means differ by at most twice the larger sd."""
    if n_seeds < 2:
        return None
    return abs(a[0] - b[0]) <= 2 * max(a[1], b[1])


def verdict_05(summ: dict, controls: dict[str, dict], df: pd.DataFrame, n_seeds: int):
    """Rows of the closing table of notebook 05 and the numbers behind them."""
    loss = arm_means(df, "final_val_loss")
    acc = arm_means(df, "final_accuracy") if "final_accuracy" in df else {}
    drop = arm_means(df.assign(d=df["initial_val_loss"] - df["final_val_loss"]), "d")
    ctrl = "; ".join(f"{k}: {v['silhouette_math_vs_nlp_all']:.2f} / {v['silhouette_squad_vs_web_all']:.2f}"
                     for k, v in controls.items())
    # the paper's claim is relative (MATH apart, SQuAD and C4 together), read off a 2-D picture: MATH must be
    # the better-separated pair at most layers and linearly separable (probe >= 95%); the absolute
    # silhouette reading (Kaufman & Rousseeuw) is reported beside it
    own = (summ["layers_math_more_separated"] > summ["n_layers"] / 2 and summ["probe_math_vs_nlp_all"] >= 0.95)
    strength = ("reasonable" if summ["silhouette_math_vs_nlp_all"] > SILHOUETTE_REASONABLE else
                "weak" if summ["silhouette_math_vs_nlp_all"] > SILHOUETTE_NO_STRUCTURE else "not substantial")
    rows = [(
        "MATH activations form their own cluster",
        f"silhouette MATH vs SQuAD+web: median {summ['silhouette_math_vs_nlp_all']:.2f} over {summ['n_layers']} "
        f"layers ({summ['silhouette_math_vs_nlp_deep']:.2f} at the deep-prompt layers), higher than SQuAD vs web at "
        f"{summ['layers_math_more_separated']} of {summ['n_layers']} layers; linear probe "
        f"{100 * summ['probe_math_vs_nlp_all']:.0f}%. In absolute terms the cluster structure is {strength} "
        f"(Kaufman & Rousseeuw: > 0.25 weak, > 0.5 reasonable). Controls, MATH-vs-NLP / SQuAD-vs-web "
        f"silhouette: {ctrl}",
        bool(own)), (
        "SQuAD and C4 share one cluster (C4 here: a web-text stand-in)",
        f"silhouette SQuAD vs web: median {summ['silhouette_squad_vs_web_all']:.2f} over layers "
        f"(<= {SILHOUETTE_NO_STRUCTURE} means no substantial cluster structure); a linear probe still separates "
        f"them at {100 * summ['probe_squad_vs_web_all']:.0f}%",
        bool(summ["silhouette_squad_vs_web_all"] <= SILHOUETTE_NO_STRUCTURE))]
    interp = [a for a in loss if a.startswith("interp")]
    base = [a for a in loss if not a.startswith("interp")]
    if interp and base:
        worst = max(loss[b][0] + loss[b][1] for b in base)
        ok = all(loss[a][0] <= worst and drop[a][0] > 0 for a in interp)
        meas = "; ".join(f"{a}: val loss {loss[a][0]:.3f} ± {loss[a][1]:.3f}"
                         + (f", accuracy {acc[a][0]:.1f} ± {acc[a][1]:.1f}%" if a in acc else "") for a in interp)
        meas += " vs " + "; ".join(f"{b}: {loss[b][0]:.3f} ± {loss[b][1]:.3f}"
                                   + (f", {acc[b][0]:.1f} ± {acc[b][1]:.1f}%" if b in acc else "") for b in base)
        rows.append(("Interpolation priors between domains can be used for MATH",
                     meas + f" (usable: loss falls and ends at or below the worst baseline's mean + sd, {worst:.3f})",
                     bool(ok)))
    else:
        rows.append(("Interpolation priors between domains can be used for MATH",
                     "needs an interpolation arm and a baseline arm", None))
    return rows, {"final_val_loss": loss, "final_accuracy": acc, "val_loss_drop": drop}


def verdict_06(findings: dict, df: pd.DataFrame, n_seeds: int):
    plain = findings["plain"]
    loss = arm_means(df, "final_val_loss")
    acc = arm_means(df, "final_accuracy") if "final_accuracy" in df else {}
    rows = []
    if plain is not None:
        rows.append((
            "The VAE prior collapsed",
            f"plain VAE (β = 1, no penalty): {plain['active_units']} of {plain['latent_dim']} latent units active, "
            f"decoded samples keep {plain['variance_ratio']:.2f} of the data's variance; "
            f"{findings['n_collapsed']} of {findings['n_settings']} (β, γ) settings collapse by our rule "
            f"(active share < {COLLAPSE_ACTIVE_SHARE} or variance ratio < {COLLAPSE_VARIANCE_RATIO})",
            bool(plain["collapsed"])))
    else:
        rows.append(("The VAE prior collapsed", "the sweep lacks β = 1, γ = 0", None))
    if "fitted-gaussian" in loss:
        for a in [a for a in loss if a.startswith("vae")]:
            same = _same(loss[a], loss["fitted-gaussian"], n_seeds)
            rows.append((
                "Prompts from different priors reach the same final quality",
                f"{a}: val loss {loss[a][0]:.3f} ± {loss[a][1]:.3f}"
                + (f", accuracy {acc[a][0]:.1f} ± {acc[a][1]:.1f}%" if a in acc else "")
                + f" vs fitted-gaussian {loss['fitted-gaussian'][0]:.3f} ± {loss['fitted-gaussian'][1]:.3f}"
                + (f", {acc['fitted-gaussian'][0]:.1f} ± {acc['fitted-gaussian'][1]:.1f}%" if acc else "")
                + " (same: means within twice the larger seed sd)", same))
    return rows, {"final_val_loss": loss, "final_accuracy": acc}


# ------------------------------------------------------------------------------------ results.json
def write_results(out_dir: Path, results: dict) -> Path:
    from .s02_s04 import save_results
    return save_results(out_dir, results)
