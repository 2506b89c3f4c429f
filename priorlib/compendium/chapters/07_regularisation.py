"""Logic behind notebook 07 (issue 9): how regularisers move the trained soft prompt, and what that
costs in task quality.

The paper says it investigates "the influence of regularization techniques on the posterior" and
shows nothing. Here one prior (``fitted-gaussian`` by default) trains soft prompts on SQuAD with one
regulariser at a time, each at a few log-spaced weights, plus an unregularised baseline at several
seeds (the noise yardstick). For every run we measure where the trained prompt ends (distances to
the token-embedding cloud, see :func:`priorlib.compendium.experiments.placement_rows`) and how well it works
(held-out loss, F1, EM, token precision and recall), then summarise each regulariser's curve and
phrase the notebook's closing verdict rows.

The regularisers (:mod:`priorlib.regularisers`; weight decay is AdamW's own):

=================== ============================ ================================== =========
name                TrainConfig field            target measure (where it acts)     direction
=================== ============================ ================================== =========
prior_l2            reg_prior_l2                 moved_l2 (from the prior sample)   down
mahalanobis         reg_mahalanobis              median_mahalanobis                 down
mahalanobis_hinge   reg_mahalanobis_hinge        median_mahalanobis                 up
nearest_token       reg_nearest_token            median_nn_l2                       down
weight_decay        weight_decay                 median_norm (row L2 norm)          down
=================== ============================ ================================== =========
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from priorlib.compendium import decide
from priorlib.compendium import experiments as ex
from priorlib.compendium import profiles
from priorlib.compendium import runs as sec
from priorlib.compendium.margins import margin
from priorlib.regularisers import REGULARISERS
from priorlib.compendium.paths import results_dir
from priorlib.compendium.verdicts import Outcome, Verdict, fmt

NOTEBOOK = "07_regularisation"


BASELINE = "none"  # the regulariser name of unregularised runs

# Quality and divergence columns of :func:`sweep_rows` (all per run; divergence of the trained prompt).
QUALITY = ("final_val_loss", "final_f1", "final_exact_match", "final_precision", "final_recall")
DIVERGENCE = ("median_mahalanobis", "median_nn_l2", "median_nn_cos", "share_in_hdr", "moved_l2", "median_norm")
UNITS = {"median_mahalanobis": "whitened units", "median_nn_l2": "embedding units", "median_nn_cos": "1 − cos",
         "share_in_hdr": "fraction", "moved_l2": "embedding units", "median_norm": "embedding units",
         "final_val_loss": "nats/token", "final_f1": "%", "final_exact_match": "%"}

# Regulariser weights, log-spaced (a decade apart) from "barely felt" to "dominates the answer loss".
# Calibrated on SmolLM2-135M at the fitted-Gaussian prior sample and at the unregularised lr 5e-2 end
# point (a probe of the gradients, not a run): the answer loss (1-3 nats) has a gradient of rms
# ~8e-2 per coordinate at the prior sample and ~1e-2 at the end. AdamW follows whichever gradient is
# larger per coordinate (its step size does not depend on scale), so what matters is each term's
# gradient relative to the loss's, at weight 1:
#   prior_l2       2 (p - p0) / n: 0 at the start, ~1.6x the loss's at the end (moved ~4): from
#                  weight 10 it should hold the movement well under 1, at 100 pin it to the sample;
#   mahalanobis    2 Sigma^-1 (p - mu) / (n d): 0.03x at the start (m ~ 24), 0.8x at the end (m ~ 57):
#                  weight 10 caps the drift outwards, 100 pulls the prompt into the Gaussian's core;
#   hinge          (r - m)+: the prior sample is barely inside the 95% radius (m ~ 24 vs r ~ 25), so
#                  the term is 0.001x the loss's at weight 1 and vanishes once training leaves the
#                  region (which unregularised lr 5e-2 runs do within a few steps): weights of
#                  1e2-1e4 are needed for it to act at all, and even then only early;
#   nearest_token  a unit vector per row / n: 0.03x at the start, 0.2x at the end: weight 10 balances
#                  the loss at the end, 100 snaps rows onto token embeddings;
#   weight_decay   decoupled, p <- p (1 - lr wd) per step: over 20 steps at lr 5e-2 (summed lr ~0.53)
#                  wd 0.1 shrinks the start by ~5%, 1 by ~40%, 10 bounds each coordinate near 1/wd
#                  (~0.1, the token embeddings' own scale); lr x wd must stay below 1.
# The smoke profile keeps the smallest and largest weight of each (plumbing only).
# The weights themselves, per profile, are in priorlib/compendium/profiles.py (CHAPTERS['07_regularisation']).


@dataclass
class Settings(sec.Settings):
    """Notebook 02's settings (same model, sizes and run keys) plus the regulariser sweep."""
    weights: dict = field(default_factory=dict)  # regulariser name -> weights (> 0)
    sweep_seeds: list = field(default_factory=list)  # the seeds of each regulariser x weight run ([] : seeds[0])

    @property
    def prior(self) -> str:
        return self.priors[0]

    @property
    def lr(self) -> float:
        return self.learning_rates[0]

    @property
    def arm_seeds(self) -> list:
        """The seeds every regulariser x weight runs at."""
        return list(self.sweep_seeds) or self.seeds[:1]

    def configs(self) -> list:
        """The unregularised baseline at every seed, then each regulariser at each weight, at each of
        ``sweep_seeds`` (default: the first seed only)."""
        base = self.base(prior=self.prior, lr=self.lr)
        cells = [dict(seed=seed) for seed in self.seeds]
        for name, ws in self.weights.items():
            cells += [{"seed": seed, REGULARISERS[name].field: float(w)} for w in ws for seed in self.arm_seeds]
        d = base.to_dict()
        return [ex.TrainConfig.from_dict({**d, **c}) for c in cells]

    def grid_table(self) -> pd.DataFrame:
        """One row per regulariser: its weights, the field it sets and the measure it should move."""
        from priorlib.compendium.tables import result_table
        return result_table(pd.DataFrame([{"regulariser": n, "TrainConfig field": REGULARISERS[n].field,
                              "weights": ", ".join(f"{w:g}" for w in ws), "acts on": REGULARISERS[n].acts_on,
                              "expected": "lower" if REGULARISERS[n].direction < 0 else "higher",
                              "what it does": REGULARISERS[n].title} for n, ws in self.weights.items()]))


def settings(profile: str = "smoke", *, model=None, prior=None, lr=None, seeds=None, weights=None, steps=None,
             batch_size=None, n_tokens=None, max_length=None, eval_size=None, out_dir=None) -> Settings:
    """Resolve the notebook's papermill parameters (``None``: the profile's default) and check them
    before any compute. Sizes are notebook 02's for the same profile, so the unregularised seed-0
    run is notebook 02's run of this prior and learning rate (reused from the run store)."""
    d = profiles.chapter_defaults(NOTEBOOK, profile)
    weights = _check_weights(d["weights"] if weights is None else weights)
    lr = float(d["lr"] if lr is None else lr)
    seeds = [int(x) for x in (d["seeds"] if seeds is None else seeds)]
    if not seeds:
        raise ValueError("seeds must not be empty")
    if lr * max(weights.get("weight_decay", [0.0])) >= 1:
        raise ValueError(f"lr x weight_decay must stay below 1 (lr {lr:g}, largest weight decay "
                         f"{max(weights['weight_decay']):g}): a larger decay step flips the prompt's sign")
    s2 = sec.settings("02_lr_priors", profile, model=model, priors=[prior or d["prior"]], learning_rates=[lr], seeds=seeds,
                      steps=steps, batch_size=batch_size, n_tokens=n_tokens, max_length=max_length,
                      eval_size=eval_size,
                      out_dir=results_dir(NOTEBOOK, out_dir))
    sweep_seeds = [x for x in (int(y) for y in d.get("sweep_seeds", [])) if x in seeds]  # a caller's seeds win
    s = Settings(**{f.name: getattr(s2, f.name) for f in dataclasses.fields(sec.Settings)}, weights=weights,
                 sweep_seeds=sweep_seeds)
    s.notebook = "07"
    s.base(prior=s.prior, lr=s.lr)  # an unknown prior or a bad size fails here, before the model loads
    return s


def plan(profile: str = "cpu") -> list[ex.TrainConfig]:
    """Every config the notebook trains in ``profile``, in the order it asks for them: ``configs()`` of its
    default settings (the unregularised baseline at every seed, then each regulariser at each weight), the
    very call the notebook makes. Its seed-0 baseline has the key of notebook 02's run of this prior and rate
    when notebook 02 trains it (:func:`shares_baseline_with_02`): planned here too, trained once."""
    from priorlib.compendium.setup import setup
    return ex.unique(setup(NOTEBOOK, profile).configs())


def _check_weights(weights) -> dict:
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"weights must be a non-empty mapping regulariser -> list of weights, got {weights!r}")
    out = {}
    for name, ws in weights.items():
        if name not in REGULARISERS:
            raise ValueError(f"unknown regulariser {name!r}; choose from {list(REGULARISERS)}")
        ws = [ws] if isinstance(ws, (int, float)) else list(ws)
        if not ws or not all(isinstance(w, (int, float)) and w > 0 and math.isfinite(w) for w in ws):
            raise ValueError(f"weights of {name} must be positive numbers (0 is the shared baseline), got {ws!r}")
        out[name] = sorted(float(w) for w in ws)
    return out


def regulariser_of(cfg) -> tuple[str, float]:
    """``(name, weight)`` of the one regulariser a config switches on, ``("none", 0.0)`` for none."""
    on = [(r.name, float(getattr(cfg, r.field))) for r in REGULARISERS.values() if getattr(cfg, r.field) > 0]
    if len(on) > 1:
        raise ValueError(f"config {cfg.key()} switches on several regularisers: {on}")
    return on[0] if on else (BASELINE, 0.0)


def shares_baseline_with_02(s: Settings) -> bool:
    """Whether notebook 02 (its default grid for this profile) trains this notebook's seed-0 baseline."""
    s2 = sec.settings("02_lr_priors", s.profile)
    first = s.configs()[0].key()
    return any(c.key() == first for c in sec.lr_seed_grid(s2, s2.base()))


def sweep_sentence(s: Settings) -> str:
    n = len(s.seeds) + len(s.arm_seeds) * sum(len(w) for w in s.weights.values())
    return (f"Prior `{s.prior}`, lr {s.lr:g}, {s.steps} steps of batch {s.batch_size}: the unregularised "
            f"baseline at seeds {s.seeds}, then each of {len(s.weights)} regularisers at "
            f"{', '.join(str(len(w)) for w in s.weights.values())} weights ({_seed_list(s.arm_seeds)}): {n} runs.")


# --------------------------------------------------------------------------------------------- per run
def sweep_rows(runs, reference) -> pd.DataFrame:
    """One row per run: regulariser, weight, seed, quality (``QUALITY``, initial val loss), where the
    trained prompt sits (``DIVERGENCE``; ``sampled_*``: the prior sample's value) and the final
    unweighted value of the run's penalty term (NaN for the baseline and weight decay)."""
    q = ex.run_rows(runs, fields=("seed",))
    place = ex.placement_rows(runs, reference, fields=("seed",))  # sampled, trained per run, in run order
    trained = place[place["when"] == "trained"].reset_index(drop=True)
    sampled = place[place["when"] == "sampled"].reset_index(drop=True)
    regs = [regulariser_of(r.config) for r in runs]
    out = pd.DataFrame({"regulariser": [n for n, _ in regs], "weight": [w for _, w in regs], "seed": q["seed"]})
    for c in ("initial_val_loss",) + QUALITY:
        out[c] = q[c] if c in q else np.nan
    out["plateaued"] = q["plateaued"] if "plateaued" in q else False
    norms = [_median_norms(r) for r in runs]  # (sampled, trained)
    trained = trained.assign(median_norm=[b for _, b in norms])
    sampled = sampled.assign(median_norm=[a for a, _ in norms])
    for c in DIVERGENCE:
        out[c] = trained[c].to_numpy()
    for c in ("median_mahalanobis", "median_nn_l2", "median_norm", "share_in_hdr"):
        out[f"sampled_{c}"] = sampled[c].to_numpy()
    out["final_penalty"] = [_last_penalty(r, n) for r, (n, _) in zip(runs, regs)]
    out["key"] = q["key"]
    return out


def _median_norms(run) -> tuple[float, float]:
    ck = run.checkpoints()
    return tuple(float(t["soft"].float().norm(dim=-1).median()) for t in (ck[0][1], ck[-1][1]))


def _last_penalty(run, name: str) -> float:
    h = run.history()
    col = f"reg_{name}"
    return float(h[col].iloc[-1]) if col in h and len(h) else float("nan")


# --------------------------------------------------------------------------------------------- summaries
def baseline_stats(table: pd.DataFrame, metric: str) -> dict:
    """Mean, sd (ddof 1; NaN with one seed), min, max and n of ``metric`` over the baseline runs."""
    v = table.loc[table["regulariser"] == BASELINE, metric].astype(float).dropna().to_numpy()
    if not len(v):
        raise ValueError("the table has no unregularised baseline run")
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}


def regularisers_in(table: pd.DataFrame) -> list[str]:
    """The regularisers of the table, in ``REGULARISERS`` order."""
    present = set(table["regulariser"])
    return [n for n in REGULARISERS if n in present]


def curves(table: pd.DataFrame, metrics=QUALITY + DIVERGENCE) -> pd.DataFrame:
    """Per regulariser and weight, the mean of ``metrics`` over seeds; each curve starts at weight 0
    with the baseline's mean, so it reads from "unregularised" to "strongest"."""
    metrics = [m for m in metrics if m in table]
    base = table[table["regulariser"] == BASELINE]
    parts = []
    for name in regularisers_in(table):
        part = pd.concat([base.assign(regulariser=name, weight=0.0), table[table["regulariser"] == name]])
        g = part.groupby("weight")[metrics].mean().reset_index()
        g.insert(0, "regulariser", name)
        g.insert(2, "n", part.groupby("weight").size().to_numpy())
        parts.append(g)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["regulariser", "weight", *metrics])


def _arm(table: pd.DataFrame, metric: str, name: str, weight: float | None = None) -> decide.Arm:
    part = table[table["regulariser"] == name]
    if weight is not None:
        part = part[np.isclose(part["weight"].astype(float), weight)]
    return decide.arm(part, metric, BASELINE if name == BASELINE else f"{name} w={weight:g}")


def moves_towards_anchor(table: pd.DataFrame, name: str):
    """``protocol.Difference`` of regulariser ``name``'s target measure at its largest weight against the
    unregularised runs, in its pulling (or, for the hinge, pushing) direction."""
    r = REGULARISERS[name]
    top = float(table.loc[table["regulariser"] == name, "weight"].max())
    return decide.protocol.difference(_arm(table, r.acts_on, name, top).values, _arm(table, r.acts_on, BASELINE).values,
                                      expect="less" if r.direction < 0 else "greater")


def quality_vs_baseline(table: pd.DataFrame, name: str, weight: float, measure: str = "final_val_loss"):
    """:func:`decide.same_quality` of regulariser ``name`` at ``weight`` against the unregularised runs."""
    return decide.same_quality(_arm(table, measure, name, weight), _arm(table, measure, BASELINE), measure)


def curve_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per regulariser: how far its largest weight moves its target measure from the baseline
    (``delta``), the interval and outcome of that move in the expected direction (``moves_ci``,
    ``moves``: :func:`moves_towards_anchor`), the Spearman correlation of weight and target over all its
    runs with the baseline runs as weight 0 (``rho``), the range of the target reached, the largest
    change of validation loss and F1 against the baseline, and ``quality``: whether every weight's
    validation loss is equivalent to the baseline's (:func:`quality_vs_baseline`, :func:`decide.every`)."""
    q = baseline_stats(table, "final_val_loss")
    f1 = baseline_stats(table, "final_f1")
    base = table[table["regulariser"] == BASELINE]
    rows = []
    for name in regularisers_in(table):
        r = REGULARISERS[name]
        part = table[table["regulariser"] == name]
        b = baseline_stats(table, r.acts_on)
        by_w = part.groupby("weight")[[r.acts_on, "final_val_loss", "final_f1"]].mean().sort_index()
        top = float(by_w[r.acts_on].iloc[-1])
        dq = by_w["final_val_loss"] - q["mean"]
        worst_w = float(dq.abs().idxmax())
        both = pd.concat([base, part])
        mv = moves_towards_anchor(table, name)
        same = [quality_vs_baseline(table, name, float(w)) for w in by_w.index]
        rows.append({
            "regulariser": name, "target": r.acts_on, "direction": r.direction,
            "weights": list(by_w.index), "largest_weight": float(by_w.index[-1]),
            "target_baseline": b["mean"], "target_baseline_sd": b["sd"], "target_at_largest": top,
            "delta": top - b["mean"], "moves_ci": [mv.ci_low, mv.ci_high], "moves": mv.outcome.value,
            "rho": sec.rank_correlation(both["weight"], both[r.acts_on]),
            "target_min": float(min(b["mean"], by_w[r.acts_on].min())),
            "target_max": float(max(b["mean"], by_w[r.acts_on].max())),
            "val_loss_at_largest": float(by_w["final_val_loss"].iloc[-1]),
            "worst_val_loss_change": float(dq.loc[worst_w]), "worst_weight": worst_w,
            "quality": decide.every(t.outcome for t in same).value,
            "f1_at_largest": float(by_w["final_f1"].iloc[-1]),
            "f1_change_at_largest": float(by_w["final_f1"].iloc[-1] - f1["mean"]),
        })
    return pd.DataFrame(rows)


def inside_cloud(table: pd.DataFrame, hdr_radius: float, vocab_gap: float) -> pd.Series:
    """Whether each trained prompt ends inside the token-embedding cloud: median Mahalanobis distance at
    most the Gaussian's 95% radius, or median nearest-token L2 at most the vocabulary's own
    neighbour gap (as close to a real token as tokens are to each other)."""
    return (table["median_mahalanobis"] <= hdr_radius) | (table["median_nn_l2"] <= vocab_gap)


# --------------------------------------------------------------------------------------------- captions
# What each measure is, in words (the figures' axis labels carry the same units, ``UNITS``), and a short
# name for it inside a sentence.
MEASURE_NAMES = {"median_mahalanobis": "median Mahalanobis distance to the token-embedding Gaussian",
                 "median_nn_l2": "median L2 to the nearest token embedding",
                 "median_nn_cos": "median cosine distance to the nearest token",
                 "moved_l2": "median L2 moved from the prior sample", "share_in_hdr": "share of vectors inside the "
                 "Gaussian's 95% region", "median_norm": "median row norm", "final_val_loss": "final validation loss",
                 "final_f1": "final F1", "final_exact_match": "final exact match"}
SHORT_NAMES = {"median_mahalanobis": "Mahalanobis distance", "median_nn_l2": "nearest-token L2",
               "median_nn_cos": "nearest-token cosine distance", "moved_l2": "distance moved",
               "share_in_hdr": "share inside the 95% region", "median_norm": "row norm",
               "final_val_loss": "validation loss", "final_f1": "F1", "final_exact_match": "exact match"}
_DELTA = {"final_val_loss": ("nats", ".3f"), "final_f1": ("points", ".1f"), "final_exact_match": ("points", ".1f")}


def _seed_list(seeds) -> str:
    s = sorted({int(x) for x in seeds})
    return f"seed {s[0]}" if len(s) == 1 else "seeds " + ", ".join(map(str, s))


def _count(ns, what: str = "seed") -> str:
    lo, hi = int(min(ns)), int(max(ns))
    n = f"{lo}" if lo == hi else f"{lo}–{hi}"
    return f"{n} {what}{'s' if hi != 1 else ''}"


def divergence_caption(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Caption of the figure "each regulariser's own measure against its weight"
    (``plots.regularisation.divergence_vs_weight(table, summary)``): what a panel, dot, band and line are, and
    how far each regulariser moved its measure at its largest weight (:func:`curve_summary`)."""
    n_base = int((table["regulariser"] == BASELINE).sum())
    reg = table[table["regulariser"] != BASELINE]
    parts = [f"{REGULARISERS[r.regulariser].short} (w={r.largest_weight:g}) takes the {SHORT_NAMES[r.target]} from "
             f"{r.target_baseline:.3g} to {r.target_at_largest:.3g} {UNITS[r.target]} ({r.moves})"
             for r in summary.itertuples()]
    pull = summary[summary["direction"] < 0]
    n_moves = int((pull["moves"] == Outcome.AGREES.value).sum())
    return (f"One panel per regulariser: the measure it acts on, for the trained prompt (y: median over its vectors, "
            f"units on the axis), against its weight (x, log scale); dots are the regularised runs "
            f"({_seed_list(reg['seed'])}), the grey band the range of the {n_base} unregularised seeds (line: their "
            f"mean), the dotted line the prior sample's median. At the largest weight, against the unregularised mean "
            f"(in brackets: the protocol's outcome for a move in its intended direction, 95% interval): " + "; ".join(parts)
            + f"; {n_moves} of {len(pull)} pull-type regularisers move their measure towards its anchor.")


def tradeoff_caption(curves: pd.DataFrame, table: pd.DataFrame, quality: str, measures) -> str:
    """Caption of one trade-off figure (``plots.regularisation.tradeoff_figures`` yields ``(fig, quality,
    measures)``; ``curves``: :func:`curves`, ``table``: :func:`sweep_rows`): what is plotted, how far the trained
    prompts spread along each x measure, and how many regulariser x weight points leave the unregularised seeds'
    band of ``quality``, with the furthest one."""
    unit, f = _DELTA.get(quality, (UNITS.get(quality, ""), ".3g"))
    b = table.loc[table["regulariser"] == BASELINE, quality].astype(float)
    lo, hi, mean = float(b.min()), float(b.max()), float(b.mean())
    pts = curves[curves["weight"] > 0].reset_index(drop=True)
    q = pts[quality].astype(float)
    outside = int(((q < lo) | (q > hi)).sum())
    dist = (q - mean).abs()
    far = pts.loc[dist.idxmax()] if dist.notna().any() and dist.max() > 0 else None
    xs = " and ".join(f"{MEASURE_NAMES[m]} ({UNITS[m]})" for m in measures)
    spans = " and ".join(f"{SHORT_NAMES[m]} {table[m].min():.3g}–{table[m].max():.3g}" for m in measures)
    name = MEASURE_NAMES[quality]
    furthest = ("" if far is None else f", the furthest {REGULARISERS[far['regulariser']].short} at w={far['weight']:g} "
                f"({far[quality] - mean:+{f}} {unit} from the unregularised mean)")
    return (f"{name[0].upper() + name[1:]} ({UNITS[quality]}, y) against the {xs} of the trained prompt "
            f"(x, one panel per measure): one line per regulariser from the unregularised mean (weight 0) through its weights "
            f"(labelled; each point {'one run' if pts['n'].max() == 1 else 'a mean over ' + _count(pts['n'])}), crosses the {len(b)} unregularised seeds and the "
            f"grey band their range ({lo:{f}}–{hi:{f}}); vertical lines are the reference distances in the legend. "
            f"While the runs span {spans}, {outside} of {len(pts)} regulariser × weight points leave that band"
            f"{furthest}.")


# --------------------------------------------------------------------------------------------- verdicts
def tradeoff_refs(table: pd.DataFrame, hdr_radius: float, yardsticks: dict) -> dict:
    """The vertical reference lines of each trade-off figure's x measure: ``{measure: [(x, kind), ...]}``,
    kinds as ``plots.regularisation.REF_LINES`` (the Gaussian's 95% radius, the token embeddings' own
    neighbour gap, and where the prior's samples sat, the median over runs)."""
    sampled = {m: float(table[f"sampled_{m}"].median()) for m in ("median_mahalanobis", "median_nn_l2")}
    return {"median_mahalanobis": [(hdr_radius, "radius"), (sampled["median_mahalanobis"], "prior")],
            "median_nn_l2": [(yardsticks["median_nn_l2"], "gap"), (sampled["median_nn_l2"], "prior")],
            "median_nn_cos": [(yardsticks["median_nn_cos"], "gap")], "moved_l2": [(yardsticks["median_nn_l2"], "gap")]}


def sweep_summary_sentence(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The sweep in numbers: the baseline's quality over its seeds, the range of placements and quality
    across the regularised runs, and each regulariser's largest change of validation loss (``summary``
    from :func:`curve_summary`) beside the equivalence margin."""
    qb, fb = baseline_stats(table, "final_val_loss"), baseline_stats(table, "final_f1")
    reg = table[table.regulariser != BASELINE]
    if reg.empty:
        raise ValueError("the table has no regularised run")
    return (f"Unregularised: validation loss {qb['mean']:.3f} nats (seeds {qb['min']:.3f}–{qb['max']:.3f}), F1 "
            f"{fb['mean']:.1f}% (seeds {fb['min']:.1f}–{fb['max']:.1f}%). Across the {len(reg)} regularised runs the "
            f"prompts ended at median Mahalanobis distance {table.median_mahalanobis.min():.3g}–"
            f"{table.median_mahalanobis.max():.3g} and nearest-token L2 {table.median_nn_l2.min():.3g}–"
            f"{table.median_nn_l2.max():.3g}, with validation loss {reg.final_val_loss.min():.3f}–"
            f"{reg.final_val_loss.max():.3f} and F1 {reg.final_f1.min():.1f}–{reg.final_f1.max():.1f}%. Largest change "
            "of validation loss per regulariser: "
            + "; ".join(f"{r.regulariser} {r.worst_val_loss_change:+.3f} at w={r.worst_weight:g}"
                        for r in summary.itertuples())
            + f" (equivalence margin ±{margin('final_val_loss'):g} nats).")


def strongest_runs(runs, names) -> list:
    """One unregularised run (the first), then for each regulariser of ``names`` its run at the largest
    weight (the first seed of it, in ``runs``' order): the runs the placement figures show."""
    def of(name):
        part = [r for r in runs if regulariser_of(r.config)[0] == name]
        if not part:
            raise ValueError(f"no run of regulariser {name!r} among the {len(runs)} runs")
        return max(part, key=lambda r: regulariser_of(r.config)[1])
    base = next((r for r in runs if regulariser_of(r.config)[0] == BASELINE), None)
    if base is None:
        raise ValueError("no unregularised run among the runs")
    return [base] + [of(n) for n in names]


def placement_panels(runs) -> list[tuple[str, object, object]]:
    """``(label, sampled soft prompt, trained soft prompt)`` per run, for ``runs.joint_projection``."""
    from priorlib.compendium.plots.regularisation import NAMES
    out = []
    for r in runs:
        name, w = regulariser_of(r.config)
        ck = r.checkpoints()
        out.append(("unregularised" if name == BASELINE else f"{NAMES[name]}, w={w:g}", ck[0][1]["soft"], ck[-1][1]["soft"]))
    return out


def scrubbed_run(runs, table: pd.DataFrame, names) -> tuple[str, object, pd.Series]:
    """The run the checkpoint scrubber shows: the nearest-token regulariser at its largest weight (else the
    first of ``names``), with its row of ``table``; returns ``(regulariser, run, row)``."""
    names = list(names)
    name = "nearest_token" if "nearest_token" in names else names[0]
    run = strongest_runs(runs, [name])[1]
    return name, run, table[table.key == run.config.key()].iloc[0]


def scrubbed_run_sentence(name: str, row: pd.Series, table: pd.DataFrame) -> str:
    from priorlib.compendium.plots.regularisation import NAMES
    return (f"Run shown: {NAMES[name]} at weight {row.weight:g}; its vectors end a median {row.median_nn_l2:.3g} from "
            f"the nearest token embedding (unregularised: {baseline_stats(table, 'median_nn_l2')['mean']:.3g}; the prior "
            f"sample: {row.sampled_median_nn_l2:.3g}).")


def _run_name(name: str, w: float) -> str:
    return f"{name} w={w:g}"


def verdicts_07(table: pd.DataFrame, summary: pd.DataFrame, *, hdr_radius: float,
                vocab_gap: float) -> tuple[list[Verdict], dict]:
    """The closing verdicts of notebook 07 and the numbers behind them (rules: ``margins.RULES``).

    1. *Regularisation moves the posterior* (the paper "investigates" it and shows nothing): agrees if
       every pull-type regulariser in the sweep (prior L2, Mahalanobis, nearest token, weight decay)
       moves its target measure at its largest weight towards its anchor (:func:`moves_towards_anchor`,
       the protocol's ``difference``). The hinge is reported alongside.
    2. *Quality is flat across where the prompts end up* (the paper's implicit claim): agrees if every
       regulariser at every weight is equivalent in final validation loss to the baseline
       (:func:`quality_vs_baseline`: TOST within ``margins.MARGINS``, plateau rule).
    3. *Prompts can be held inside the token-embedding cloud at no cost in quality*: among the
       (regulariser, weight) arms whose runs all end inside the cloud (:func:`inside_cloud`), agrees if
       at least one is equivalent to the baseline (:func:`decide.some`); inconclusive if none ends inside.
    """
    q = baseline_stats(table, "final_val_loss")
    reg = table[table["regulariser"] != BASELINE].reset_index(drop=True)
    m = margin("final_val_loss")
    num: dict = {"baseline_val_loss": q, "val_loss_margin": m, "baseline_f1": baseline_stats(table, "final_f1"),
                 "hdr_radius": hdr_radius, "vocab_median_nn_l2": vocab_gap, "curves": summary.to_dict(orient="records")}
    sd_txt = f"{len(table[table['regulariser'] == BASELINE])} baseline seeds"
    arms = [(n, float(w)) for n, w in dict.fromkeys(zip(reg["regulariser"], reg["weight"]))]
    tests = {a: quality_vs_baseline(table, *a) for a in arms}

    # 1 -- does each regulariser move what it acts on?
    pull = summary[summary["direction"] < 0]
    parts = [f"{r['regulariser']} (w={r['largest_weight']:g}): {r['target']} {r['target_baseline']:.3g} → "
             f"{r['target_at_largest']:.3g} (95% CI of the change [{fmt(r['moves_ci'][0])}, {fmt(r['moves_ci'][1])}], "
             f"ρ(weight, {r['target']}) = {fmt(r['rho'], 2)}; {r['moves']})" for _, r in summary.iterrows()]
    hinge = summary[summary["regulariser"] == "mahalanobis_hinge"]
    hinge_note = ""
    if len(hinge) and hinge["target_baseline"].iloc[0] > hdr_radius:
        hinge_note = (f" The hinge only acts inside the 95% radius ({hdr_radius:.3g}); unregularised prompts already "
                      f"end at {hinge['target_baseline'].iloc[0]:.3g}, so it can act only in the first steps, while the prompt is "
                      "still inside.")
    n_moves = int((pull["moves"] == Outcome.AGREES.value).sum())
    num.update(pull_regularisers_moving=n_moves, pull_regularisers=len(pull))
    row1 = Verdict("Regularisation moves the posterior (the paper says it investigated this but shows no result)",
                   f"{n_moves} of {len(pull)} pull-type regularisers move the measure they act on towards its anchor at "
                   f"their largest weight: " + "; ".join(parts) + "." + hinge_note + " Rule: agrees if every pull-type "
                   f"regulariser's change against the unregularised runs ({sd_txt}) has a 95% interval wholly on the "
                   "pulling side of 0.", decide.every(pull["moves"]) if len(pull) else Outcome.INCONCLUSIVE,
                   claim_id="regularisation-moves")

    # 2 -- is quality flat over where prompts end?
    dq = reg["final_val_loss"] - q["mean"]
    counts = {o.value: sum(t.outcome is o for t in tests.values()) for o in Outcome}
    num.update(n_regularised=len(reg), n_arms=len(arms), quality_outcomes={k: v for k, v in counts.items() if v},
               val_loss_range=[float(reg["final_val_loss"].min()), float(reg["final_val_loss"].max())] if len(reg) else None,
               mahalanobis_range=[float(table["median_mahalanobis"].min()), float(table["median_mahalanobis"].max())],
               nn_l2_range=[float(table["median_nn_l2"].min()), float(table["median_nn_l2"].max())],
               rho_mahalanobis_val_loss=sec.rank_correlation(table["median_mahalanobis"], table["final_val_loss"]),
               rho_moved_val_loss=sec.rank_correlation(table["moved_l2"], table["final_val_loss"]))
    if not len(reg):
        row2 = Verdict("Quality is flat across where the prompts end up (the paper's implicit claim)",
                       "no regularised runs", Outcome.INCONCLUSIVE, claim_id="quality-flat-over-placement")
    else:
        worst = int(dq.abs().idxmax())
        w = reg.loc[worst]
        num["worst_run"] = {"regulariser": w["regulariser"], "weight": float(w["weight"]),
                            "val_loss_change": float(dq[worst])}
        tally = ", ".join(f"{v} {k}" for k, v in num["quality_outcomes"].items())
        row2 = Verdict("Quality is flat across where the prompts end up (the paper's implicit claim)",
                       f"trained prompts ended at median Mahalanobis distance {num['mahalanobis_range'][0]:.3g}–"
                       f"{num['mahalanobis_range'][1]:.3g} and nearest-token L2 {num['nn_l2_range'][0]:.3g}–{num['nn_l2_range'][1]:.3g}; "
                       f"final validation loss {num['val_loss_range'][0]:.3f}–{num['val_loss_range'][1]:.3f} nats against the "
                       f"unregularised {q['mean']:.3f} (sd {fmt(q['sd'])}, {sd_txt}); of {len(arms)} regulariser × weight arms "
                       f"against the baseline (TOST, margin ±{m:g} nats): {tally}; largest change: "
                       f"{_run_name(w['regulariser'], w['weight'])}, {dq[worst]:+.3f} nats (moved {w['moved_l2']:.3g}, "
                       f"Mahalanobis {w['median_mahalanobis']:.3g}); F1 {reg['final_f1'].min():.1f}–{reg['final_f1'].max():.1f}% "
                       f"vs {num['baseline_f1']['mean']:.1f}%. Rule: agrees if every arm is equivalent to the baseline.",
                       decide.every(t.outcome for t in tests.values()), claim_id="quality-flat-over-placement")

    # 3 -- can the prompt be kept inside the pretrained cloud for free?
    inside = inside_cloud(reg, hdr_radius, vocab_gap) if len(reg) else pd.Series(dtype=bool)
    ins = [a for a in arms if inside[(reg["regulariser"] == a[0]) & np.isclose(reg["weight"], a[1])].all()]
    ok = [a for a in ins if tests[a].outcome is Outcome.AGREES]
    num.update(inside_runs=[_run_name(*a) for a in ins], inside_runs_within_tolerance=[_run_name(*a) for a in ok],
               baseline_inside=bool(inside_cloud(table[table["regulariser"] == BASELINE], hdr_radius, vocab_gap).all()))
    listing = "; ".join(f"{_run_name(*a)}: {tests[a].outcome.value} ({tests[a].reason})" for a in ins)
    base_where = ("the unregularised prompts end inside too" if num["baseline_inside"] else
                  "the unregularised prompts end outside")
    row3 = Verdict("Where the prompts end up can be chosen without losing quality: they can be held inside the "
                   "token-embedding cloud at baseline quality",
                   (f"{len(ins)} of {len(arms)} regulariser × weight arms end inside the cloud (median Mahalanobis ≤ "
                    f"{hdr_radius:.3g}, the 95% radius, or median nearest-token L2 ≤ {vocab_gap:.3g}, the vocabulary's own "
                    f"neighbour gap; {base_where}); {len(ok)} of them equivalent to the baseline (TOST, ±{m:g} nats)"
                    + (f": {listing}" if ins else "") + ". Rule: agrees if at least one arm inside is equivalent; "
                    "inconclusive if none ends inside."),
                   decide.some(tests[a].outcome for a in ins), claim_id="held-inside-for-free")
    return [row1, row2, row3], num
