"""Logic behind notebooks 02-04 (paper sections 4.2-4.4): settings per profile, run grids,
quality and placement tables, the exclusion prior's density check, activation clouds, and the
numbers behind each notebook's closing "paper's observation / what we measured" table.

The notebooks stay thin: they call these functions, show the tables and figures, and phrase the
captions from the numbers returned here.
"""
from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import experiments as ex

PAPER_LRS = (5e-4, 1e-3, 5e-3)
PAPER_MODEL = "Llama-3.2-1B"
MODEL_NAMES = {"smollm2-135m": "SmolLM2-135M-Instruct", "tiny-random-llama": "a 4-layer random Llama (d=64)",
               "llama-3.2-1b": "Llama-3.2-1B", "gemma3-270m": "Gemma-3-270M",
               "tiny-random-gemma3": "a 4-layer random Gemma-3 (d=64)"}
NOTEBOOKS = {"02": "02_lr_priors", "03": "03_exclusion", "04": "04_activation_spaces"}  # results go where `priorlib book` looks
TOKEN_PRIORS = ("isotropic", "xavier", "fitted-gaussian", "vocab-sample")

# Per notebook and profile: what differs from the experiments profile (None: the profile's value).
# cpu sizes are chosen so that each notebook trains in about 10 minutes on 2 shared cores
# (about 1 s per step at batch 4 x ~150 tokens, 0.3-0.6 s per generated answer).
_CPU_RUN = dict(steps=20, batch_size=4, max_length=128, eval_size=12, max_new_tokens=8, checkpoint_every=4,
                n_train=256, reference_texts=64)
DEFAULTS = {
    "02": {
        "smoke": dict(priors=list(TOKEN_PRIORS), learning_rates=[5e-3], seeds=[0]),
        # the second seed runs at 5e-3 only (replicate_lr): 16 runs instead of 24
        "cpu": dict(priors=list(TOKEN_PRIORS), learning_rates=[5e-4, 5e-3, 5e-2], seeds=[0, 1], replicate_lr=5e-3,
                    **_CPU_RUN),
        "paper": dict(priors=list(TOKEN_PRIORS), learning_rates=list(PAPER_LRS), seeds=[0, 1, 2]),
    },
    "03": {
        "smoke": dict(priors=["exclusion", "fitted-gaussian"], learning_rates=[5e-3], seeds=[0]),
        "cpu": dict(priors=["exclusion", "fitted-gaussian"], learning_rates=[5e-3], seeds=[0, 1], **_CPU_RUN),
        "paper": dict(priors=["exclusion", "fitted-gaussian"], learning_rates=[1e-3], seeds=[0, 1, 2]),
    },
    "04": {
        "smoke": dict(priors=["fitted-gaussian", "xavier"], learning_rates=[5e-3], seeds=[0], steps=2, eval_size=2,
                      checkpoint_every=1),
        "cpu": dict(priors=["fitted-gaussian", "xavier"], learning_rates=[5e-3], seeds=[0, 1], **_CPU_RUN),
        "paper": dict(priors=["fitted-gaussian", "xavier"], learning_rates=[1e-3], seeds=[0, 1, 2]),
    },
}


@dataclass
class Settings:
    """Everything a notebook runs with, after profile defaults are filled in."""
    notebook: str
    profile: str
    model: str
    priors: list
    learning_rates: list
    seeds: list
    steps: int
    batch_size: int
    n_tokens: int
    deep_layers: list
    max_length: int
    eval_size: int
    out_dir: Path
    replicate_lr: float | None = None  # seeds beyond the first run only at this lr (None: at every lr)
    run_overrides: dict = field(default_factory=dict)  # further TrainConfig fields (eval cadence, n_train, ...)

    def base(self, **kw) -> "ex.TrainConfig":
        """The notebook's base TrainConfig; ``kw`` wins."""
        d = dict(self.run_overrides, model=self.model, steps=self.steps, batch_size=self.batch_size,
                 n_tokens=self.n_tokens, deep_layers=tuple(self.deep_layers), max_length=self.max_length,
                 eval_size=self.eval_size)
        d["eval_every"] = d.get("checkpoint_every", ex.get_profile(self.profile).checkpoint_every)
        d["warmup_steps"] = max(1, self.steps // 10)
        d.update(kw)
        return ex.base_config(self.profile, **d)

    def table(self) -> pd.DataFrame:
        d = {k: v for k, v in asdict(self).items() if k != "run_overrides"}
        d.update(self.run_overrides)
        return pd.DataFrame({"setting": list(d), "value": [str(v) for v in d.values()]})


def settings(notebook: str, profile: str = "smoke", *, model=None, priors=None, learning_rates=None, seeds=None,
             steps=None, batch_size=None, n_tokens=None, deep_layers=None, max_length=None, eval_size=None,
             out_dir=None) -> Settings:
    """Resolve a notebook's papermill parameters: ``None`` means the profile's default."""
    p = ex.get_profile(profile)
    d = dict(DEFAULTS[notebook][profile])
    if learning_rates is not None:
        d.pop("replicate_lr", None)  # the caller chose the rates: every seed at every rate
    run_keys = ("checkpoint_every", "n_train", "reference_texts", "max_new_tokens")
    run_overrides = {k: d.pop(k) for k in run_keys if k in d}

    def pick(value, key, fallback):
        if value is not None:
            return value
        return d.get(key, fallback)

    s = Settings(
        notebook=notebook, profile=profile, model=pick(model, "model", p.model),
        priors=list(pick(priors, "priors", [])), learning_rates=[float(x) for x in pick(learning_rates, "learning_rates", p.learning_rates)],
        seeds=[int(x) for x in pick(seeds, "seeds", p.seeds)], steps=int(pick(steps, "steps", p.steps)),
        batch_size=int(pick(batch_size, "batch_size", p.batch_size)), n_tokens=int(pick(n_tokens, "n_tokens", 20)),
        deep_layers=[int(x) for x in pick(deep_layers, "deep_layers", [-3, -2, -1])],
        max_length=int(pick(max_length, "max_length", p.max_length)),
        eval_size=int(pick(eval_size, "eval_size", p.eval_size)),
        out_dir=Path(out_dir or Path(__file__).resolve().parents[2] / "_build" / "results" / NOTEBOOKS[notebook]), run_overrides=run_overrides,
        replicate_lr=d.get("replicate_lr"))
    if s.replicate_lr is not None and not any(math.isclose(s.replicate_lr, lr) for lr in s.learning_rates):
        s.replicate_lr = s.learning_rates[-1] if len(s.learning_rates) == 1 else None
    if not s.priors or not s.learning_rates or not s.seeds:
        raise ValueError("priors, learning_rates and seeds must not be empty")
    n_train = s.run_overrides.get("n_train", p.n_train)
    if n_train is not None and n_train < s.batch_size:
        s.run_overrides["n_train"] = s.batch_size
    s.run_overrides["checkpoint_every"] = min(s.run_overrides.get("checkpoint_every", p.checkpoint_every), s.steps)
    return s


def lr_seed_grid(s: Settings, base, **fixed) -> list:
    """Configs for every prior x learning rate with the first seed, plus the other seeds at
    ``s.replicate_lr`` (or at every rate when it is None). ``fixed``: further fields for all."""
    cells = []
    for prior in s.priors:
        for lr in s.learning_rates:
            seeds = s.seeds if s.replicate_lr is None or math.isclose(lr, s.replicate_lr) else s.seeds[:1]
            for seed in seeds:
                cells.append(dict(prior=prior, lr=lr, seed=seed, **fixed))
    d = base.to_dict()
    return [ex.TrainConfig.from_dict({**d, **c}) for c in cells]


def model_sentence(s: Settings) -> str:
    name = MODEL_NAMES.get(s.model, s.model)
    if s.model == "llama-3.2-1b":
        return f"This run uses the paper's model, {PAPER_MODEL}."
    if s.model == "tiny-random-llama":
        return (f"Profile `{s.profile}`: {name} checks the plumbing only; its numbers say nothing about "
                f"the paper's {PAPER_MODEL}.")
    return f"{name} stands in for the paper's {PAPER_MODEL} (profile `{s.profile}`)."


def lr_sentence(s: Settings) -> str:
    paper = [lr for lr in s.learning_rates if any(math.isclose(lr, q) for q in PAPER_LRS)]
    extra = [lr for lr in s.learning_rates if lr not in paper]
    out = f"Learning rates: {', '.join(f'{lr:g}' for lr in s.learning_rates)}."
    if paper:
        out += f" From the paper's set (5e-4, 1e-3, 5e-3): {', '.join(f'{lr:g}' for lr in paper)}."
    if extra:
        out += (f" Added here: {', '.join(f'{lr:g}' for lr in extra)}, because {s.steps}-step runs move "
                "prompts too little at the paper's rates to see where they head.")
    return out


def load(s: Settings):
    """``(model, tokenizer)`` in the trainer's precision (bf16 weights unless the base config says fp32)."""
    from ..config import Precision
    from ..models import load_model
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # no frozen "Loading weights" bar in the static book
    cfg = s.base()
    dtype = torch.bfloat16 if cfg.precision is Precision.BF16 else torch.float32
    return load_model(s.model, dtype=dtype, device=cfg.device, attn_implementation=cfg.attn_implementation)


# --------------------------------------------------------------------------------------------- tables
def variant(cfg) -> str:
    """A short name of a run's kind: ``soft (tokens)``, ``soft (layers.0.resid_post)``, ``deep cut``..."""
    if cfg.method.value == "soft":
        return f"soft ({cfg.soft_space})"
    return f"deep {cfg.deep_mode}"


def quality(runs, fields=("prior", "lr", "seed"), by=("prior", "lr"), with_variant: bool = False
            ) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """``(rows, table, target)``: one row per run, mean ± sd over seeds per group, and the training-loss
    target that every run reaches (the worst smoothed final loss) with the steps each run needed.
    ``with_variant`` adds a ``variant`` column (see :func:`variant`) usable in ``by``."""
    rows = ex.run_rows(runs, fields=fields)
    if with_variant:
        rows.insert(0, "variant", [variant(r.config) for r in runs])
    target = ex.add_steps_to_target(rows, runs)
    rows["steps_to_target"] = pd.to_numeric(rows["steps_to_target"], errors="coerce").astype(float)
    vtarget, vsteps = val_steps_to_target(runs)
    rows["val_steps_to_target"] = vsteps
    table = ex.quality_table(rows, by=list(by), metrics=("final_val_loss", "final_f1", "final_exact_match",
                                                         "final_precision", "final_recall", "initial_val_loss",
                                                         "steps_to_target", "val_steps_to_target"))
    rows.attrs["val_target"] = vtarget
    return rows, table, target


def val_steps_to_target(runs, target: float | None = None) -> tuple[float, list[float]]:
    """First evaluation step at which validation loss is at or below ``target`` (default: the worst final
    validation loss over ``runs``, so every run reaches it). NaN where a run never does."""
    evs = [r.evals() for r in runs]
    finals = [float(e.sort_values("step")["val_loss"].iloc[-1]) for e in evs]
    target = max(finals) if target is None else float(target)
    return target, [first_step_at_or_below(e["step"].to_numpy(), e["val_loss"].to_numpy(), target) for e in evs]


def first_step_at_or_below(steps, values, target: float) -> float:
    """The smallest ``step`` whose value is <= ``target`` (NaN if none); steps need not be sorted."""
    steps, values = np.asarray(steps, float), np.asarray(values, float)
    order = np.argsort(steps)
    hit = np.nonzero(values[order] <= target + 1e-12)[0]
    return float(steps[order][hit[0]]) if len(hit) else float("nan")


def placement(runs, reference, key: str = "soft", fields=("prior", "lr", "seed")) -> pd.DataFrame:
    return ex.placement_rows(runs, reference, key=key, fields=fields)


def placement_summary(rows: pd.DataFrame, by=("prior", "lr")) -> pd.DataFrame:
    """Per group: sampled -> trained medians (averaged over seeds) side by side."""
    cols = ["median_nn_l2", "median_nn_cos", "median_mahalanobis", "share_in_hdr"]
    g = rows.groupby(list(by) + ["when"])[cols + ["moved_l2"]].mean().round(3)
    wide = g.unstack("when")
    out = pd.DataFrame(index=wide.index)
    for c in cols:
        out[c] = [f"{a:.3g} → {b:.3g}" for a, b in zip(wide[(c, "sampled")], wide[(c, "trained")])]
    out["moved_l2"] = wide[("moved_l2", "trained")]
    return out.reset_index()


def reference_baseline(reference) -> dict:
    """Median NN distances and Mahalanobis distance of the reference's own rows (a yardstick)."""
    from ..metrics.placement import placement_metrics
    m = placement_metrics(reference.vectors[:1], reference, baseline_size=256)
    return m["baseline"]


def panels(runs, key: str = "soft", label=("prior", "lr")) -> list:
    out = []
    for r in runs:
        ck = r.checkpoints()
        out.append((ex.label(r.config, fields=label) + f" seed={r.config.seed}", ck[0][1][key], ck[-1][1][key]))
    return out


def scrubber(run, proj, *, reference_name: str, key: str = "soft", title: str | None = None):
    """Slider + play over the run's checkpoints (works in the static book)."""
    from ..plots.posterior import scrubber_frames
    from ..widgets import checkpoint_scrubber
    ck = run.checkpoints()
    frames = scrubber_frames(proj, [(s, t[key]) for s, t in ck], run.history(), reference_name=reference_name,
                             title=title or ex.label(run.config))
    return checkpoint_scrubber(frames, labels=[f"step {s}" for s, _ in ck])


# --------------------------------------------------------------------------------------------- comparisons
def group_compare(rows: pd.DataFrame, metric: str, group: str, a, b) -> dict:
    """Mean of ``metric`` for ``group == a`` and ``== b``, their difference, the pooled seed sd and a
    Welch t-test p-value (NaN with fewer than two seeds per side)."""
    from scipy import stats
    xa = rows.loc[rows[group] == a, metric].astype(float).dropna().to_numpy()
    xb = rows.loc[rows[group] == b, metric].astype(float).dropna().to_numpy()
    out = {"a": a, "b": b, "mean_a": float(np.mean(xa)) if len(xa) else float("nan"),
           "mean_b": float(np.mean(xb)) if len(xb) else float("nan"), "n_a": len(xa), "n_b": len(xb)}
    out["diff"] = out["mean_a"] - out["mean_b"]
    sd = [np.std(x, ddof=1) for x in (xa, xb) if len(x) > 1]
    out["pooled_sd"] = float(np.sqrt(np.mean(np.square(sd)))) if sd else float("nan")
    if len(xa) > 1 and len(xb) > 1 and (np.var(xa) + np.var(xb)) > 0:
        out["p_value"] = float(stats.ttest_ind(xa, xb, equal_var=False).pvalue)
    else:
        out["p_value"] = float("nan")
    return out


def same_within_noise(values_by_group: dict, seed_sd: float, rel_tol: float = 0.05) -> tuple[bool, float, float]:
    """``(same, spread, tolerance)``: the range of the group means is within ``max(2 * seed_sd,
    rel_tol * |mean|)`` (the seed sd when there is one, else a relative tolerance)."""
    means = np.array([float(v) for v in values_by_group.values()], float)
    spread = float(np.nanmax(means) - np.nanmin(means))
    tol = rel_tol * float(np.nanmean(np.abs(means)))
    if np.isfinite(seed_sd):
        tol = max(tol, 2.0 * float(seed_sd))
    return bool(spread <= tol), spread, tol


def pooled_seed_sd(rows: pd.DataFrame, metric: str, by) -> float:
    """sqrt of the mean within-group variance over seeds (NaN when no group has two seeds)."""
    v = rows.groupby(list(by))[metric].var(ddof=1).dropna()
    return float(np.sqrt(v.mean())) if len(v) else float("nan")


def rank_correlation(x, y) -> float:
    from scipy.stats import spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


# --------------------------------------------------------------------------------------------- 03: exclusion
def exclusion_density(reference, *, c: float = 5.0, n: int = 2000, seed: int = 0) -> dict:
    """Mahalanobis distances (under the reference's Gaussian fit) of the vocabulary rows, of ``n``
    exclusion-prior draws and of ``n`` fitted-Gaussian draws; acceptance rates; how peaked each is
    (coefficient of variation = sd / mean) and the 95% region's radius."""
    from ..metrics.placement import hdr_threshold
    from ..priors import exclusion_acceptance_rate
    from ..priors.exclusion import exclusion_sample
    g = reference.fit()
    gen = torch.Generator().manual_seed(seed)
    x_exc, stats = exclusion_sample(g, n, gen, c, max_draws=max(100_000, 50 * n))
    x_fit = g.sample(n, torch.Generator().manual_seed(seed + 1))
    m = {"vocabulary": g.mahalanobis(reference.vectors).double().numpy(),
         "exclusion": g.mahalanobis(x_exc).double().numpy(),
         "fitted-gaussian": g.mahalanobis(x_fit).double().numpy()}
    radius = hdr_threshold(reference.dim)
    summary = {k: {"median": float(np.median(v)), "mean": float(np.mean(v)), "sd": float(np.std(v)),
                   "cv": float(np.std(v) / np.mean(v)), "p05": float(np.quantile(v, 0.05)),
                   "p95": float(np.quantile(v, 0.95)), "share_in_hdr": float(np.mean(v <= radius))}
               for k, v in m.items()}
    # how much of the exclusion sample's range the vocabulary reaches: share of vocabulary rows at least
    # as far out as the closest 5% of exclusion draws
    summary["vocab_beyond_exclusion_p05"] = float(np.mean(m["vocabulary"] >= summary["exclusion"]["p05"]))
    return {"distances": m, "summary": summary, "hdr_radius": radius, "c": c, "dim": reference.dim,
            "acceptance_rate": stats["acceptance_rate"], "acceptance_rate_analytic": exclusion_acceptance_rate(c, reference.dim),
            "expected_exclusion_median": math.sqrt(c * reference.dim)}


# --------------------------------------------------------------------------------------------- 04: activations
@contextmanager
def quiet_capture():
    """Silence the activation-capture progress bar (a widget that would be frozen in the static book)."""
    from .. import hooks
    old = hooks.tqdm

    def silent(*args, **kwargs):
        return old(*args, **{**kwargs, "disable": True})

    hooks.tqdm = silent
    try:
        yield
    finally:
        hooks.tqdm = old


def domain_references(model, tok, s: Settings, point: str, domains=("web", "squad")) -> dict:
    """Activation references at ``point`` for each domain's texts (cached on disk by the engine)."""
    from ..init import activation_reference
    from ..tasks import domain_texts
    cfg = s.base()
    with quiet_capture():
        return {d: activation_reference(model, tok, domain_texts(d, cfg.reference_texts), point,
                                        model_name=s.model, max_length=s.max_length, name=f"{d} @ {point}")
                for d in domains}


def separability(a: torch.Tensor, b: torch.Tensor, n: int = 2000, seed: int = 0) -> float:
    """Held-out accuracy of a logistic regression telling rows of ``a`` from rows of ``b`` (2-fold,
    balanced, at most ``n`` rows each): 0.5 = the same cloud, 1.0 = disjoint."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.preprocessing import StandardScaler
    from sklearn.pipeline import make_pipeline
    rng = np.random.default_rng(seed)
    k = min(n, len(a), len(b))
    xa = a.float().numpy()[rng.choice(len(a), k, replace=False)]
    xb = b.float().numpy()[rng.choice(len(b), k, replace=False)]
    x = np.concatenate([xa, xb]); y = np.r_[np.zeros(k), np.ones(k)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.1))
    return float(cross_val_score(clf, x, y, cv=2).mean())


def norm_ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    """Median row norm of ``a`` over that of ``b``."""
    return float(a.float().norm(dim=-1).median() / b.float().norm(dim=-1).median())


# --------------------------------------------------------------------------------------------- output
def _clean(x):
    """Plain JSON values: tables as records, numpy and torch scalars and arrays as Python ones, NaN as None."""
    if isinstance(x, torch.Tensor):
        return _clean(x.tolist())
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, pd.DataFrame):
        return _clean(x.to_dict(orient="records"))
    return x


def save_results(out_dir, results: dict) -> Path:
    """``<out_dir>/results.json``, written atomically as strict JSON (see :func:`_clean`); every
    notebook's results go through here, and ``priorlib book`` attaches them to the executed notebook."""
    from ..checkpoint import atomic_write_text
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    atomic_write_text(path, json.dumps(_clean(results), indent=1, allow_nan=False))
    return path


def write_results(s: Settings, results: dict) -> Path:
    """``<out_dir>/results.json``: settings plus ``results``."""
    return save_results(s.out_dir, {"notebook": s.notebook, "profile": s.profile, "model": s.model,
                                    "settings": asdict(s), **results})


def verdict(rows: list[tuple[str, str, bool | None]]) -> pd.DataFrame:
    return ex.verdict_table(rows)


def env_runs_root() -> str | None:
    return os.environ.get("PRIORLIB_RUNS")


# --------------------------------------------------------------------------------------------- verdicts
def _fmt(x, nd: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{nd}g}"


def verdicts_02(rows: pd.DataFrame, place: pd.DataFrame, baseline: dict, s: Settings) -> tuple[list, dict]:
    """The closing rows of notebook 02 and the numbers behind them.

    1. *The prior decides where trained prompts end*: Spearman correlation, over runs, of the sampled and
       trained median distance to the nearest token embedding (agrees: rho >= 0.7).
    2. *Prompts stay near their prior at the paper's learning rates*: share of runs at the paper's rates
       whose vectors moved (median L2) less than the typical gap between neighbouring token embeddings
       (the vocabulary's own median NN distance) (agrees: all of them).
    3. *Final quality is the same across priors*: at the replicated learning rate, the range of mean final
       validation loss across priors is within max(2 x seed sd, 5 %) (see :func:`same_within_noise`).
    """
    num: dict = {}
    t = place[place["when"] == "trained"].reset_index(drop=True)
    sm = place[place["when"] == "sampled"].reset_index(drop=True)
    rho = rank_correlation(sm["median_nn_l2"], t["median_nn_l2"])
    num["rho_sampled_trained_nn_l2"] = rho
    gap = float(baseline["median_nn_l2"])
    num["vocab_median_nn_l2"] = gap
    paper = t[[any(math.isclose(lr, q) for q in PAPER_LRS) for lr in t["lr"]]]
    stay = float((paper["moved_l2"] < gap).mean()) if len(paper) else float("nan")
    num["share_paper_lr_runs_moved_less_than_token_gap"] = stay
    moved = t.groupby("lr")["moved_l2"].median()
    num["median_moved_l2_by_lr"] = {f"{k:g}": float(v) for k, v in moved.items()}
    lr_q = s.replicate_lr if s.replicate_lr is not None else s.learning_rates[-1]
    at = rows[np.isclose(rows["lr"].astype(float), lr_q)]
    means = at.groupby("prior")["final_val_loss"].mean().to_dict()
    sd = pooled_seed_sd(at, "final_val_loss", ["prior"])
    same, spread, tol = same_within_noise(means, sd)
    f1 = at.groupby("prior")["final_f1"].mean() if "final_f1" in at else pd.Series(dtype=float)
    num.update(quality_lr=lr_q, final_val_loss_by_prior=means, final_val_loss_seed_sd=sd,
               final_val_loss_range=spread, final_val_loss_tolerance=tol,
               final_f1_by_prior=f1.to_dict(), final_f1_range=float(f1.max() - f1.min()) if len(f1) else float("nan"))
    moved_txt = ", ".join(f"{k}: {v:.3g}" for k, v in num["median_moved_l2_by_lr"].items())
    out = [
        ("The prior decides where trained soft prompts end up (posteriors differ by prior)",
         f"Spearman ρ = {_fmt(rho, 2)} between each run's sampled and trained median distance to the nearest "
         f"token embedding ({len(t)} runs, all learning rates; agreement needs ρ ≥ 0.7)",
         None if not np.isfinite(rho) else bool(rho >= 0.7)),
        ("Prompts stay near where their prior put them at the paper's learning rates",
         f"{_fmt(100 * stay, 3)}% of runs at the paper's rates moved less than the token embeddings' typical "
         f"neighbour gap ({gap:.3g}); median movement by lr: {moved_txt}",
         None if not np.isfinite(stay) else bool(stay == 1.0)),
        ("Final quality is the same whichever prior starts the prompt",
         f"at lr {lr_q:g}: final validation loss {', '.join(f'{k} {v:.3f}' for k, v in means.items())}; range "
         f"{spread:.3f} vs tolerance {tol:.3f} (2 × seed sd {_fmt(sd)} or 5%); F1 range {_fmt(num['final_f1_range'])} points",
         bool(same)),
    ]
    return out, num


def verdicts_03(dens: dict, rows: pd.DataFrame, place: pd.DataFrame) -> tuple[list, dict]:
    """Closing rows of notebook 03.

    1. *Exclusion samples are sharply peaked*: coefficient of variation of their Mahalanobis distances is
       under half the vocabulary's (agrees).
    2. *They avoid the token-embedding density*: under 5 % of draws inside the fit's 95 % region.
    3. *Same final quality as the fitted Gaussian*: |difference of mean final val loss| within
       max(2 x pooled seed sd, 5 %).
    4. *Trained prompts from it stay outside the token region*: median trained Mahalanobis distance of
       exclusion runs above the 95 % radius.
    """
    sm = dens["summary"]
    cv_e, cv_v = sm["exclusion"]["cv"], sm["vocabulary"]["cv"]
    share_e = sm["exclusion"]["share_in_hdr"]
    cmp = group_compare(rows, "final_val_loss", "prior", "exclusion", "fitted-gaussian")
    cmp_f1 = group_compare(rows, "final_f1", "prior", "exclusion", "fitted-gaussian") if "final_f1" in rows else {}
    same, spread, tol = same_within_noise({"exclusion": cmp["mean_a"], "fitted-gaussian": cmp["mean_b"]},
                                          cmp["pooled_sd"])
    t = place[place["when"] == "trained"]
    m_exc = float(t.loc[t["prior"] == "exclusion", "median_mahalanobis"].median())
    m_fit = float(t.loc[t["prior"] == "fitted-gaussian", "median_mahalanobis"].median())
    num = {"cv_exclusion": cv_e, "cv_vocabulary": cv_v, "cv_fitted": sm["fitted-gaussian"]["cv"],
           "share_exclusion_in_hdr": share_e, "acceptance_rate": dens["acceptance_rate"],
           "acceptance_rate_analytic": dens["acceptance_rate_analytic"], "val_loss": cmp, "f1": cmp_f1,
           "trained_median_mahalanobis_exclusion": m_exc, "trained_median_mahalanobis_fitted": m_fit,
           "hdr_radius": dens["hdr_radius"]}
    out = [
        ("The exclusion prior's samples are sharply peaked",
         f"Mahalanobis distance of exclusion draws {sm['exclusion']['median']:.1f} ± {sm['exclusion']['sd']:.2f} "
         f"(sd/mean {cv_e:.3f}) vs the vocabulary's {sm['vocabulary']['median']:.1f} ± {sm['vocabulary']['sd']:.2f} "
         f"(sd/mean {cv_v:.3f}); acceptance rate {dens['acceptance_rate']:.4f} (analytic {dens['acceptance_rate_analytic']:.4f})",
         bool(cv_e < 0.5 * cv_v)),
        ("Exclusion samples lie outside the token-embedding density",
         f"{100 * share_e:.1f}% of draws inside the fit's 95% region (vocabulary: {100 * sm['vocabulary']['share_in_hdr']:.1f}%, "
         f"fitted Gaussian: {100 * sm['fitted-gaussian']['share_in_hdr']:.1f}%)", bool(share_e < 0.05)),
        ("Training from the exclusion prior reaches the same quality as from the fitted Gaussian",
         f"final val loss {cmp['mean_a']:.3f} vs {cmp['mean_b']:.3f} (difference {cmp['diff']:+.3f}, tolerance {tol:.3f}, "
         f"Welch p = {_fmt(cmp['p_value'], 2)}); F1 {_fmt(cmp_f1.get('mean_a'))} vs {_fmt(cmp_f1.get('mean_b'))}",
         bool(same)),
        ("Trained prompts from the exclusion prior stay outside the token-embedding region",
         f"median trained Mahalanobis distance {m_exc:.1f} (exclusion) vs {m_fit:.1f} (fitted Gaussian); "
         f"95% radius {dens['hdr_radius']:.1f}", None if not np.isfinite(m_exc) else bool(m_exc > dens["hdr_radius"])),
    ]
    return out, num


def verdicts_04(sep: dict, rows: pd.DataFrame, deep_place: pd.DataFrame, act_gap: float) -> tuple[list, dict]:
    """Closing rows of notebook 04.

    1. *Web text and SQuAD activations are distinct clusters*: held-out logistic accuracy >= 0.8 at the
       deepest point measured.
    2. *Diverged priors converge later*: deep "cut" from Xavier needs more steps than from the Gaussian
       fitted on activations to reach the common training-loss target (mean over seeds; agrees if later).
    3. *"cut" and "carry" perform the same*: |difference of mean final val loss| within max(2 x seed sd, 5 %).
    4. *Trained deep prompts stay near their prior in activation space*: every run's last-layer block
       moved less than the activations' typical neighbour gap ``act_gap``.
    """
    last = list(sep)[-1]
    acc = sep[last]
    cut = rows[rows["variant"] == "deep cut"]
    st = cut.groupby("prior")["steps_to_target"].mean()
    s_fit, s_xav = float(st.get("fitted-gaussian", np.nan)), float(st.get("xavier", np.nan))
    vst = cut.groupby("prior")["val_steps_to_target"].mean()
    g = rows[(rows["prior"] == "fitted-gaussian") & rows["variant"].isin(["deep cut", "deep carry"])]
    cmp = group_compare(g, "final_val_loss", "variant", "deep cut", "deep carry")
    cmp_f1 = group_compare(g, "final_f1", "variant", "deep cut", "deep carry") if "final_f1" in g else {}
    same, spread, tol = same_within_noise({"cut": cmp["mean_a"], "carry": cmp["mean_b"]}, cmp["pooled_sd"])
    t = deep_place[deep_place["when"] == "trained"]
    stay = float((t["moved_l2"] < act_gap).mean()) if len(t) else float("nan")
    num = {"separability": sep, "steps_to_target_deep_cut": st.to_dict(), "val_steps_to_target_deep_cut": vst.to_dict(),
           "cut_vs_carry_val_loss": cmp, "cut_vs_carry_f1": cmp_f1, "deep_share_moved_less_than_gap": stay,
           "activation_median_nn_l2": act_gap}
    v_fit, v_xav = float(vst.get("fitted-gaussian", np.nan)), float(vst.get("xavier", np.nan))
    # the per-batch training loss is noisy enough to touch the target at once in short runs; then only the
    # validation loss (a fixed held-out set) can tell the priors apart, so it decides
    use_val = np.isfinite(v_fit) and np.isfinite(v_xav) and (not (np.isfinite(s_fit) and np.isfinite(s_xav))
                                                             or s_fit == s_xav)
    a_, b_ = (v_fit, v_xav) if use_val else (s_fit, s_xav)
    later = None if not (np.isfinite(a_) and np.isfinite(b_)) else bool(b_ > a_)
    num["converge_later_decided_by"] = "validation loss" if use_val else "training loss"
    out = [
        ("Web text and SQuAD activations form distinct clusters",
         "held-out accuracy of a linear classifier telling web-text from SQuAD tokens: "
         + ", ".join(f"{k}: {v:.3f}" for k, v in sep.items()), bool(acc >= 0.8)),
        ("Priors that diverge from the activations (Xavier) converge later than priors fitted on them",
         f"deep 'cut' steps to the common validation-loss target: fitted Gaussian {_fmt(v_fit)}, Xavier {_fmt(v_xav)}; "
         f"to the training-loss target: fitted {_fmt(s_fit)}, Xavier {_fmt(s_xav)} "
         f"(decided by the {num['converge_later_decided_by']})", later),
        ("'cut' and 'carry' deep prompts perform the same",
         f"final val loss cut {cmp['mean_a']:.3f} vs carry {cmp['mean_b']:.3f} (difference {cmp['diff']:+.3f}, "
         f"tolerance {tol:.3f}, Welch p = {_fmt(cmp['p_value'], 2)}); F1 {_fmt(cmp_f1.get('mean_a'))} vs "
         f"{_fmt(cmp_f1.get('mean_b'))}", bool(same)),
        ("Trained deep prompts stay where their prior put them in activation space",
         f"{_fmt(100 * stay, 3)}% of last-layer blocks moved less than the activations' typical neighbour gap "
         f"({act_gap:.3g})", None if not np.isfinite(stay) else bool(stay == 1.0)),
    ]
    return out, num


def robust_rows(x: torch.Tensor, q: float = 0.99) -> tuple[torch.Tensor, dict]:
    """Rows of ``x`` whose L2 norm is at most the ``q`` quantile, for pictures: a few tokens with huge
    activations (the first position of a text, typically) would otherwise own the first principal
    component. Returns ``(rows, {"dropped", "norm_q", "max_over_median_norm"})``."""
    n = x.float().norm(dim=-1)
    cut = float(torch.quantile(n, q))
    keep = n <= cut
    return x[keep], {"dropped": int((~keep).sum()), "norm_q": cut,
                     "max_over_median_norm": float(n.max() / n.median())}
