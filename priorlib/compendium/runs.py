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
    replicate_also: list = field(default_factory=list)  # further rates whose runs get every seed too
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
        d.pop("replicate_also", None)
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
        replicate_lr=d.get("replicate_lr"), replicate_also=[float(x) for x in d.get("replicate_also", [])])
    if s.replicate_lr is not None and not any(math.isclose(s.replicate_lr, lr) for lr in s.learning_rates):
        s.replicate_lr = s.learning_rates[-1] if len(s.learning_rates) == 1 else None
    s.replicate_also = [x for x in s.replicate_also if any(math.isclose(x, lr) for lr in s.learning_rates)]
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
    ``s.replicate_lr`` and at the rates of ``s.replicate_also`` (every seed at every rate when
    ``replicate_lr`` is None). ``fixed``: further fields for all."""
    cells = []
    replicated = [] if s.replicate_lr is None else [s.replicate_lr, *s.replicate_also]
    for prior in s.priors:
        for lr in s.learning_rates:
            every = s.replicate_lr is None or any(math.isclose(lr, x) for x in replicated)
            seeds = s.seeds if every else s.seeds[:1]
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
    """``lr_sentence(setup("03_exclusion", "converged"))`` -> "Learning rate: 0.05, not from the paper's set ...":
    the rates of ``s``, which of them are the paper's, and why any others are added (every case reads right:
    only the paper's, only added ones, or a mix)."""
    paper = [lr for lr in s.learning_rates if any(math.isclose(lr, q) for q in PAPER_LRS)]
    extra = [lr for lr in s.learning_rates if lr not in paper]
    listed = ", ".join(f"{lr:g}" for lr in s.learning_rates)
    out = f"Learning rate{'s' if len(s.learning_rates) > 1 else ''}: {listed}"
    paper_set = "the paper's set (5e-4, 1e-3, 5e-3)"
    length = f"runs of {'up to ' if getattr(s.base(), 'stop_at_plateau', False) else ''}{s.steps} steps"
    why = f"{length} move prompts too little at the paper's rates to see where they head"
    if not extra:
        return out + f", {'all ' if len(paper) > 1 else ''}from {paper_set}."
    if not paper:
        return out + f", {'none' if len(extra) > 1 else 'not'} from {paper_set}: {why}."
    return (out + f". From {paper_set}: {', '.join(f'{lr:g}' for lr in paper)}. "
            f"Added here: {', '.join(f'{lr:g}' for lr in extra)}, because {why}.")


def steps_phrase(cfg) -> str:
    """``steps_phrase(S.base())`` -> "up to 300 steps of batch 8 (the cap; a run stops earlier at its plateau)"
    when the plateau rule stops runs, else "300 steps of batch 8"."""
    if getattr(cfg, "stop_at_plateau", False):
        return f"up to {cfg.steps} steps of batch {cfg.batch_size} (the cap; a run stops earlier at its plateau)"
    return f"{cfg.steps} steps of batch {cfg.batch_size}"


def plateau_sentence(rows: pd.DataFrame, cap: int | None = None, rule: bool = True) -> str:
    """``plateau_sentence(rows, cap=300)`` -> "1 of the 9 runs reached the plateau rule and 8 stopped at the
    300-step cap; ...": from the rows' ``plateaued`` column (:func:`quality`), how many runs are known to
    have plateaued, and that a quality comparison of runs not known to have plateaued reads inconclusive.
    ``rule=False``: the runs trained a fixed number of steps, without the plateau rule."""
    n = len(rows)
    k = int(rows["plateaued"].fillna(False).astype(bool).sum()) if "plateaued" in rows else 0
    cap_txt = f"the {cap}-step cap" if cap else "the step cap"
    verdict = "a quality comparison of runs not known to have plateaued reads inconclusive"
    runs_txt = f"{n} run{'s' if n != 1 else ''}"
    if not rule:
        return (f"The {runs_txt} trained a fixed {cap or 'number of'} steps without the plateau rule: none is "
                f"known to have plateaued, so a quality comparison between them reads inconclusive.")
    if k == n:
        return f"{'The' if n == 1 else 'All'} {runs_txt} reached the plateau rule before {cap_txt}."
    if k == 0:
        return f"None of the {runs_txt} reached the plateau rule: all stopped at {cap_txt}, and {verdict}."
    return (f"{k} of the {runs_txt} reached the plateau rule and {n - k} stopped at {cap_txt}; "
            f"{verdict}.")


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
    """A short name of a run's kind: ``soft (tokens)``, ``soft (layers.0.resid_post)``, ``deep cut``...;
    ``token cut`` is a deep run with one block on layer 0 and no token-level prompt: 20 vectors on the
    token embeddings, as a soft prompt's, but cut from layer 0's output (a soft prompt carries them on)."""
    if cfg.method.value == "soft":
        return f"soft ({cfg.soft_space})"
    if not cfg.token_prompt and [int(k) for k in cfg.deep_layers] == [0]:
        return f"token {cfg.deep_mode}"
    return f"deep {cfg.deep_mode}"


def quality(runs, fields=("prior", "lr", "seed"), by=("prior", "lr"), with_variant: bool = False
            ) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """``(rows, table, target)``: one row per run, mean ± sd over seeds per group, and the training-loss
    target that every run reaches (the worst smoothed final loss) with the steps each run needed.
    ``with_variant`` adds a ``variant`` column (see :func:`variant`) usable in ``by``. Both targets are
    relative to ``runs`` (so to the chapter that passes them): ``rows.attrs`` and ``table.attrs`` hold them
    as ``train_target`` and ``val_target``; :func:`target_sentence` says what they are."""
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
    for frame in (rows, table):
        frame.attrs.update(train_target=float(target), val_target=float(vtarget))
    return rows, table, target


def target_sentence(train_target: float, val_target: float, unit: str = "nats/token") -> str:
    """``target_sentence(rows.attrs["train_target"], rows.attrs["val_target"])`` -> "Steps to target: ...":
    what the two steps-to-target columns of :func:`quality` count, with the targets they used. Each target
    is the worst final value of the runs passed, so the columns compare runs of one table, not chapters."""
    return (f"*Steps to target*: training steps until the 5-step running mean of the training loss first reaches "
            f"{train_target:.3f} {unit}; *validation steps to target*: steps until the held-out curve first "
            f"reaches {val_target:.3f} {unit}. Each target is the worst final value of this chapter's runs, so "
            f"these columns compare the runs of this table only, not across chapters.")


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


def number(x) -> str:
    """``number(-0.0)`` -> "0", ``number(0.0134)`` -> "0.0134": three significant figures
    (:func:`~priorlib.compendium.tables.sig`), never a negative zero."""
    from priorlib.compendium.tables import sig
    x = float(x)
    return sig(0.0 if x == 0 else x)


PLACEMENT_STATISTIC = "median over a prompt's vectors, mean over seeds"


def placement_summary(rows: pd.DataFrame, by=("prior", "lr")) -> pd.DataFrame:
    """Per group: sampled -> trained values side by side; each run's median over its prompt's vectors (the
    share in the HDR: each run's share), averaged over the group's seeds (:data:`PLACEMENT_STATISTIC`, which
    the displayed headers name; :func:`trained_mahalanobis` gives the same numbers unrounded).

        placement_summary(place).loc[0, "median_mahalanobis"]   # "53.2 → 165"
    """
    cols = ["median_nn_l2", "median_nn_cos", "median_mahalanobis", "share_in_hdr"]
    grouped = rows.groupby(list(by) + ["when"])
    g = grouped[cols + ["moved_l2"]].mean().round(3)
    wide = g.unstack("when")
    out = pd.DataFrame(index=wide.index)
    for c in cols:
        out[c] = [f"{number(a)} → {number(b)}" for a, b in zip(wide[(c, "sampled")], wide[(c, "trained")])]
    out["moved_l2"] = wide[("moved_l2", "trained")]
    out["seeds"] = grouped.size().unstack("when")["trained"]
    out = out.reset_index()
    from priorlib.compendium.tables import result_table
    words = {"median_nn_l2": "Nearest-token L2", "median_nn_cos": "Nearest-token cosine",
             "median_mahalanobis": "Mahalanobis", "moved_l2": "Moved (L2)"}
    shown = {c: f"{w}, {PLACEMENT_STATISTIC}" for c, w in words.items()}
    shown["share_in_hdr"] = "Share in HDR, mean over seeds"
    return result_table(out, display=out.rename(columns=shown))


def trained_mahalanobis(rows: pd.DataFrame, by="prior") -> pd.Series:
    """``trained_mahalanobis(place)["exclusion"]``: per ``by`` group, the trained prompts' Mahalanobis distance
    as :func:`placement_summary` states it (each run's median over its prompt's vectors, mean over seeds)."""
    t = rows[rows["when"] == "trained"]
    return t.groupby(by)["median_mahalanobis"].mean()


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
    proj = Projection(reference.vectors if rows is None else rows, points=pts)
    proj.reference = reference  # the scrubber's radial map measures distance under this reference's fit
    return proj


def distance_figure(run_list, reference, *, key: str = "soft", by="prior",
                    reference_name: str = "token embeddings"):
    """``(fig, caption)``: the distance panels (:func:`~priorlib.compendium.plots.posterior.distance_panels`)
    for the sampled and the trained prompts of ``run_list``, grouped by ``by`` (a config field, or a function of
    the config), and a caption (:func:`beyond_caption`) with each group's share of prompt vectors farther
    (Mahalanobis) than every row of the reference's seeded subsample."""
    from priorlib.compendium.plots import posterior as pp
    groups: dict = {}
    members: dict = {}
    for when, i in (("sampled", 0), ("trained", -1)):
        for r in run_list:
            g = by(r.config) if callable(by) else getattr(r.config, by)
            groups.setdefault(f"{g}, {when}", []).append(r.checkpoints()[i][1][key].reshape(-1, reference.dim).float())
            if when == "sampled":
                members.setdefault(g, []).append(r.config)
    groups = {k: torch.cat(v) for k, v in groups.items()}
    tokens = pp.token_distances(reference)
    prompts = pp.prompt_distances(reference, groups)
    far = pp.beyond_tokens(tokens, prompts)
    fig = pp.distance_panels(tokens, prompts, reference_name=reference_name,
                             title="Where the prompts are, in the quantities the placement claims use")
    shares = {g: (far[f"{g}, sampled"], far[f"{g}, trained"]) for g in members}
    caption = beyond_caption(shares, {g: pooled(c) for g, c in members.items()},
                             q99=float(np.quantile(tokens["mahalanobis"], 0.99)), n_rows=len(tokens["mahalanobis"]),
                             n_total=len(reference), reference_name=reference_name)
    return fig, caption


def pooled(cfgs) -> str:
    """``pooled([cfg_lr_1e-3, cfg_lr_5e-2])`` -> "2 runs (learning rates 0.001, 0.05)": what one group of
    :func:`distance_figure` pools ("" for a single run)."""
    if len(cfgs) <= 1:
        return ""
    parts = []
    lrs = sorted({c.lr for c in cfgs})
    seeds = sorted({c.seed for c in cfgs})
    if len(lrs) > 1:
        parts.append("learning rates " + ", ".join(f"{x:g}" for x in lrs))
    if len(seeds) > 1:
        parts.append("seeds " + ", ".join(str(x) for x in seeds))
    return f"{len(cfgs)} runs" + (f" ({'; '.join(parts)})" if parts else "")


def beyond_caption(shares: dict, pools: dict, *, q99: float, n_rows: int, n_total: int,
                   reference_name: str = "token embeddings") -> str:
    """The caption of :func:`distance_figure`: ``shares`` maps a group to its (sampled, trained) share of
    prompt vectors beyond every subsampled reference row, ``pools`` a group to :func:`pooled`'s phrase.

        beyond_caption({"isotropic": (0.0, 0.667)}, {"isotropic": ""}, q99=31.8, n_rows=1024, n_total=49152)
    """
    def group(g):
        a, b = shares[g]
        return f"{g} {100 * a:.0f}% → {100 * b:.0f}%"
    same = len(set(pools.values())) == 1
    items = [group(g) + ("" if same or not pools[g] else f", pooled over {pools[g]}") for g in shares]
    out = (f"The black curves: {n_rows:,} rows drawn at random (seed 0) from the {n_total:,} {reference_name}; their "
           f"Mahalanobis distance has 99th percentile {q99:.3g}. Share of prompt vectors farther than every one of "
           f"those rows, sampled (the prior's draw) → trained (the last checkpoint): " + "; ".join(items) + ".")
    shared = next(iter(pools.values()), "")
    if same and shared:
        out += f" Each share is pooled over {shared}."
    return out


def scrubber(run, proj, *, reference_name: str, key: str = "soft", title: str | None = None,
             radial: bool = True):
    """Slider + play over the run's checkpoints (works in the static book). With ``radial`` and a ``proj`` from
    :func:`joint_projection`, the prompts are drawn on its :class:`~priorlib.compendium.plots.posterior.RadialMap`:
    each at its exact Mahalanobis distance under the reference's fit, so a prompt outside the token region is
    drawn outside it (a linear map can fold it into the cloud's middle)."""
    from priorlib.compendium.plots.posterior import RadialMap, scrubber_frames
    from priorlib.compendium.widgets import checkpoint_scrubber
    ck = run.checkpoints()
    if radial and getattr(proj, "reference", None) is not None:
        proj = RadialMap(proj, proj.reference.fit())
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
