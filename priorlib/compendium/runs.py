"""Logic behind notebooks 02-04 (paper sections 4.2-4.4): settings per profile, run grids,
quality and placement tables, the exclusion prior's density check, activation clouds, and the
numbers behind each notebook's closing "paper's observation / what we measured" table.

The notebooks stay thin: they call these functions, show the tables and figures, and phrase the
captions from the numbers returned here.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from priorlib.compendium import experiments as ex
from priorlib.compendium import profiles
from priorlib.compendium.paths import portable, results_dir

PAPER_LRS = (5e-4, 1e-3, 5e-3)
PAPER_MODEL = "Llama-3.2-1B"
MODEL_NAMES = {"smollm2-135m": "SmolLM2-135M-Instruct", "tiny-random-llama": "a 4-layer random Llama (d=64)",
               "llama-3.2-1b": "Llama-3.2-1B", "gemma3-270m": "Gemma-3-270M",
               "tiny-random-gemma3": "a 4-layer random Gemma-3 (d=64)"}
TOKEN_PRIORS = tuple(profiles.TOKEN_PRIORS)


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
        d.setdefault("eval_every", d.get("checkpoint_every", profiles.run_sizes(self.profile).checkpoint_every))
        d.setdefault("warmup_steps", max(1, self.steps // 10))
        d.update(kw)
        return ex.base_config(self.profile, **d)

    def table(self) -> pd.DataFrame:
        d = {k: v for k, v in asdict(self).items() if k != "run_overrides"}
        d["out_dir"] = portable(d["out_dir"])  # the executed notebook records no machine path
        d.update(self.run_overrides)
        from priorlib.compendium.tables import result_table
        return result_table(pd.DataFrame({"setting": list(d), "value": [str(v) for v in d.values()]}))


def settings(stem: str, profile: str = "smoke", *, model=None, priors=None, learning_rates=None, seeds=None,
             steps=None, batch_size=None, n_tokens=None, deep_layers=None, max_length=None, eval_size=None,
             out_dir=None) -> Settings:
    """Resolve the papermill parameters of chapter ``stem`` (02-04, and the grids of 07-09 built on 02's):
    ``None`` means the profile's default (:mod:`priorlib.compendium.profiles`)."""
    p = profiles.run_sizes(profile)
    d = profiles.chapter_defaults(stem, profile)
    if learning_rates is not None:
        d.pop("replicate_lr", None)  # the caller chose the rates: every seed at every rate
    # further TrainConfig fields a chapter's profile may fix (a converged design: the plateau rule and its cadence)
    run_keys = ("checkpoint_every", "n_train", "reference_texts", "max_new_tokens", "eval_every", "warmup_steps",
                "schedule", "stop_at_plateau", "plateau_window", "plateau_tol", "plateau_eval_size", "eval_max_length")
    run_overrides = {k: d.pop(k) for k in run_keys if k in d}

    def pick(value, key, fallback):
        if value is not None:
            return value
        return d.get(key, fallback)

    s = Settings(
        notebook=stem[:2], profile=profile, model=pick(model, "model", p.model),
        priors=list(pick(priors, "priors", [])), learning_rates=[float(x) for x in pick(learning_rates, "learning_rates", p.learning_rates)],
        seeds=[int(x) for x in pick(seeds, "seeds", p.seeds)], steps=int(pick(steps, "steps", p.steps)),
        batch_size=int(pick(batch_size, "batch_size", p.batch_size)), n_tokens=int(pick(n_tokens, "n_tokens", 20)),
        deep_layers=[int(x) for x in pick(deep_layers, "deep_layers", [-3, -2, -1])],
        max_length=int(pick(max_length, "max_length", p.max_length)),
        eval_size=int(pick(eval_size, "eval_size", p.eval_size)),
        out_dir=results_dir(stem, out_dir), run_overrides=run_overrides,
        replicate_lr=d.get("replicate_lr"))
    if s.replicate_lr is not None and not any(math.isclose(s.replicate_lr, lr) for lr in s.learning_rates):
        s.replicate_lr = s.learning_rates[-1] if len(s.learning_rates) == 1 else None
    if not s.priors or not s.learning_rates or not s.seeds:
        raise ValueError("priors, learning_rates and seeds must not be empty")
    n_train = s.run_overrides.get("n_train", p.n_train)
    if n_train is not None and n_train < s.batch_size:
        s.run_overrides["n_train"] = s.batch_size
    s.run_overrides["checkpoint_every"] = min(s.run_overrides.get("checkpoint_every", p.checkpoint_every), s.steps)
    lr_seed_grid(s, s.base())  # every cell's config is valid (prior, model, sizes) before anything loads
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
    from priorlib.config import Precision
    from priorlib.models import load_model
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
    """First evaluation step at which the learning curve (``plateau_loss``, evaluated at every evaluation
    step) is at or below ``target`` (default: the worst final value over ``runs``, so every run reaches it).
    NaN where a run never does."""
    evs = [r.evals() for r in runs]
    finals = [float(e.sort_values("step")["plateau_loss"].iloc[-1]) for e in evs]
    target = max(finals) if target is None else float(target)
    return target, [first_step_at_or_below(e["step"].to_numpy(), e["plateau_loss"].to_numpy(), target) for e in evs]


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
    from priorlib.compendium.tables import result_table
    return result_table(out.reset_index())


def reference_baseline(reference) -> dict:
    """Median NN distances and Mahalanobis distance of the reference's own rows (a yardstick)."""
    from priorlib.metrics.placement import placement_metrics
    m = placement_metrics(reference.vectors[:1], reference, baseline_size=256)
    return m["baseline"]


def panels(runs, key: str = "soft", label=("prior", "lr")) -> list:
    out = []
    for r in runs:
        ck = r.checkpoints()
        out.append((ex.label(r.config, fields=label) + f" seed={r.config.seed}", ck[0][1][key], ck[-1][1][key]))
    return out


def joint_projection(reference, panel_list, rows=None):
    """The prompts' map: :class:`~priorlib.compendium.plots.posterior.Projection` fitted on the reference
    rows (or ``rows``, e.g. activations without their massive-norm rows) and every sampled and trained
    prompt of ``panel_list`` together (whitened; far stays far)."""
    from priorlib.compendium.plots.posterior import Projection
    pts = torch.cat([torch.cat([s.reshape(-1, reference.dim), t.reshape(-1, reference.dim)]).float()
                     for _, s, t in panel_list])
    return Projection(reference.vectors if rows is None else rows, points=pts)


def distance_figure(run_list, reference, *, key: str = "soft", by="prior",
                    reference_name: str = "token embeddings"):
    """``(fig, caption)``: the distance panels (:func:`~priorlib.compendium.plots.posterior.distance_panels`)
    for the sampled and the trained prompts of ``run_list``, grouped by ``by`` (a config field, or a function of the config), and a
    caption with the share of trained prompt vectors farther (Mahalanobis) than every sampled token row."""
    from priorlib.compendium.plots import posterior as pp
    groups: dict = {}
    for when, i in (("sampled", 0), ("trained", -1)):
        for r in run_list:
            name = f"{by(r.config) if callable(by) else getattr(r.config, by)}, {when}"
            groups.setdefault(name, []).append(r.checkpoints()[i][1][key].reshape(-1, reference.dim).float())
    groups = {k: torch.cat(v) for k, v in groups.items()}
    tokens = pp.token_distances(reference)
    prompts = pp.prompt_distances(reference, groups)
    far = pp.beyond_tokens(tokens, prompts)
    q99 = float(np.quantile(tokens["mahalanobis"], 0.99))
    fig = pp.distance_panels(tokens, prompts, reference_name=reference_name,
                             title="Where the prompts are, in the quantities the placement claims use")
    caption = (f"Mahalanobis distance of the {reference_name} themselves: 99th percentile {q99:.3g}. Share of "
               f"prompt vectors farther than every sampled row: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in far.items()) + ".")
    return fig, caption


def scrubber(run, proj, *, reference_name: str, key: str = "soft", title: str | None = None):
    """Slider + play over the run's checkpoints (works in the static book)."""
    from priorlib.compendium.plots.posterior import scrubber_frames
    from priorlib.compendium.widgets import checkpoint_scrubber
    ck = run.checkpoints()
    frames = scrubber_frames(proj, [(s, t[key]) for s, t in ck], run.history(), reference_name=reference_name,
                             title=title or ex.label(run.config))
    return checkpoint_scrubber(frames, labels=[f"step {s}" for s, _ in ck])


# --------------------------------------------------------------------------------------------- comparisons
def steps_metric(rows: pd.DataFrame) -> str:
    """The steps-to-target measure that decides a speed claim: the training loss, unless it cannot tell
    runs apart (every run reached the target at the same step: a noisy per-batch loss can touch it at
    once), then the validation loss, which is measured on one fixed held-out set."""
    s = rows["steps_to_target"].astype(float)
    return "val_steps_to_target" if s.nunique(dropna=True) <= 1 else "steps_to_target"


def rank_correlation(x, y) -> float:
    from scipy.stats import spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(spearmanr(x, y).statistic)


# --------------------------------------------------------------------------------------------- 03: exclusion


# --------------------------------------------------------------------------------------------- 04: activations
@contextmanager
def quiet_capture():
    """Silence the activation-capture progress bar (a widget that would be frozen in the static book)."""
    from priorlib import hooks
    old = hooks.tqdm

    def silent(*args, **kwargs):
        return old(*args, **{**kwargs, "disable": True})

    hooks.tqdm = silent
    try:
        yield
    finally:
        hooks.tqdm = old


def env_runs_root() -> str | None:
    return os.environ.get("PRIORLIB_RUNS")


# --------------------------------------------------------------------------------------------- verdicts
