"""Notebook 08 (issue 9): posteriors as priors. The paper closes with the hypothesis that controllable
posteriors could serve as priors for new tasks; this tests it.

Source
  SQuAD soft prompts from the ``fitted-gaussian`` prior at lr 5e-2, with notebook 02's sizes
  (``runs.settings("02_lr_priors", profile)``), so that seed 0 is the very run of notebook 02's grid (shared
  through the run store). At the paper's rates the prompts barely move and the test would be vacuous;
  :func:`bank_shift` measures how far they moved at 5e-2.
  The trained (last-checkpoint) prompts of every source seed form the *bank* (``priors.posterior``).
  :func:`bank_shift` says how far the bank moved from the prior it started from.

Target
  MATH arithmetic, soft prompts, from the ``posterior`` prior fitted to the bank (``gaussian``, ``vae``)
  or copied from it (``copy``: target seed k starts from source prompt k mod P), and from the controls:
  ``fitted-gaussian`` (the source's own prior: separates "trained on SQuAD" from "drawn from the same
  distribution"), ``vocab-sample`` and ``isotropic``. :func:`transfer_rows` and :func:`arm_summary`
  measure steps to a common training-loss target, validation-loss curves, final loss and accuracy;
  :func:`verdicts_08` turns them into the closing table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from priorlib.compendium import decide
from priorlib.compendium import experiments as ex
from priorlib.config import TrainConfig
from priorlib.compendium import profiles
from priorlib.compendium import runs as sec
from priorlib.compendium.arms import usable
from priorlib.compendium.paths import results_dir
from priorlib.compendium.runs import steps_metric  # noqa: F401  (the speed measure, shared with chapter 04)
from priorlib.compendium.verdicts import Outcome, Verdict, outcome_of

NOTEBOOK = "08_posterior_transfer"
SOURCE_PRIOR = "fitted-gaussian"
POSTERIOR_ARMS = ("posterior-gaussian", "posterior-vae", "posterior-copy")
FITTED_ARMS = ("posterior-gaussian", "posterior-vae")  # priors fitted to the bank (the hypothesis proper)
CONTROL_ARMS = ("fitted-gaussian", "vocab-sample", "isotropic")
ARMS = POSTERIOR_ARMS + CONTROL_ARMS
ARM_TITLES = {
    "posterior-gaussian": "Gaussian fitted to the SQuAD posterior",
    "posterior-vae": "VAE trained on the SQuAD posterior",
    "posterior-copy": "copy of a trained SQuAD prompt (warm start)",
    "fitted-gaussian": "Gaussian fitted to the token embeddings (the source's prior)",
    "vocab-sample": "random token embeddings",
    "isotropic": "isotropic N(0, 0.02²)",
}
# the bank counts as moved when its vectors travelled further than the token embeddings' neighbour gap (and
# the optimiser could have moved them that far: decide.movement), and as a distribution of its own when the
# protocol's separation tells trained from sampled vectors (decide.cluster)

# ------------------------------------------------------------------------------------------ setup
@dataclass
class Setup:
    """What notebook 08 runs: the SQuAD source (notebook 02's settings) and the MATH target grid."""
    profile: str
    source: sec.Settings
    source_lr: float
    source_seeds: list
    target: TrainConfig  # the MATH base config (prior set per arm)
    arms: list
    seeds: list
    vae_epochs: int
    out_dir: Path
    bank: str | None = None  # set by :func:`make_bank`
    n_source_prompts: int = 0
    configs: list = field(default_factory=list)

    def source_configs(self) -> list[TrainConfig]:
        """The SQuAD runs, built exactly as notebook 02's grid builds its cells (same keys)."""
        d = self.source.base().to_dict()
        return [TrainConfig.from_dict({**d, "prior": SOURCE_PRIOR, "lr": self.source_lr, "seed": k})
                for k in self.source_seeds]

    def describe(self) -> str:
        b, s = self.target, self.source
        return (f"profile **{self.profile}**, model `{b.model}`. Source: {len(self.source_seeds)} SQuAD runs "
                f"(seeds {self.source_seeds}) from `{SOURCE_PRIOR}` at lr {self.source_lr:g}, {s.steps} steps of "
                f"batch {s.batch_size} (notebook 02's sizes). Target: MATH arithmetic, {b.n_tokens} soft-prompt "
                f"vectors, {b.steps} steps of batch {b.batch_size} at lr {b.lr:g} (linear warm-up "
                f"{b.warmup_steps} steps, then linear decay), {b.eval_size} held-out problems evaluated every "
                f"{b.eval_every} steps, greedy answers of up to {b.max_new_tokens} tokens; arms {self.arms}, "
                f"seeds {self.seeds}")


def settings(profile: str = "cpu", *, model=None, arms=None, seeds=None, source_seeds=None, source_lr=None,
          steps=None, batch_size=None, lr=None, eval_size=None, max_new_tokens=None, vae_epochs=None,
          out_dir=None) -> Setup:
    """Resolve the notebook's papermill parameters (``None``: the profile's default) into a :class:`Setup`."""
    t = profiles.chapter_defaults(NOTEBOOK, profile)  # the MATH target's sizes
    arms = list(arms) if arms is not None else list(ARMS)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"priors (the target arms): unknown arm(s) {unknown}; choose from {list(ARMS)}")
    seeds = [int(x) for x in (seeds if seeds is not None else t["seeds"])]
    source_seeds = [int(x) for x in (source_seeds if source_seeds is not None else t["source_seeds"])]
    if not arms or not seeds or len(source_seeds) < 2:
        raise ValueError("priors (the target arms) and seeds must not be empty, and the bank needs at least two source seeds")
    source_lr = float(source_lr if source_lr is not None else t["source_lr"])
    if not source_lr > 0:
        raise ValueError(f"source_lr must be > 0, got {source_lr}")
    vae_epochs = int(vae_epochs if vae_epochs is not None else t["vae_epochs"])
    if vae_epochs < 1:
        raise ValueError(f"vae_epochs must be >= 1, got {vae_epochs}")
    src = sec.settings("02_lr_priors", profile, model=model)
    steps_ = int(steps if steps is not None else t["steps"])
    every = min(t["eval_every"], steps_)
    target = ex.base_config(
        profile, model=src.model, task="math", method="soft", n_tokens=src.n_tokens, steps=steps_,
        batch_size=batch_size if batch_size is not None else t["batch_size"],
        lr=float(lr if lr is not None else t["lr"]),
        eval_size=eval_size if eval_size is not None else t["eval_size"], max_length=t["max_length"],
        max_new_tokens=max_new_tokens if max_new_tokens is not None else t["max_new_tokens"],
        eval_every=every, checkpoint_every=every, warmup_steps=max(1, steps_ // 10), prior="isotropic")
    if out_dir is None:
        out_dir = results_dir(NOTEBOOK)
    return Setup(profile, src, source_lr, source_seeds, target, arms, seeds, vae_epochs, Path(out_dir))


def arm_fields(arm: str, bank: str, seed: int, n_source_prompts: int, vae_epochs: int) -> dict:
    """Config fields of ``arm`` for target seed ``seed`` (prior params as strings, JSON in the run store)."""
    if arm in CONTROL_ARMS:
        return {"prior": arm, "prior_params": {}}
    fit = arm.removeprefix("posterior-")
    params = {"bank": bank, "fit": fit}
    if fit == "vae":
        params["epochs"] = str(int(vae_epochs))
    if fit == "copy":  # different target seeds start from different trained prompts
        params["source"] = str(int(seed) % int(n_source_prompts))
    return {"prior": "posterior", "prior_params": params}


def arm_of(config: TrainConfig) -> str:
    """The arm name of a target config."""
    if config.prior == "posterior":
        return "posterior-" + str(config.prior_params.get("fit", "gaussian"))
    return config.prior


def target_config(s: Setup, arm: str, seed: int) -> TrainConfig:
    """The target run of ``arm`` at ``seed`` (an arm of the posterior needs the bank: :func:`make_bank`)."""
    if s.bank is None and arm not in CONTROL_ARMS:
        raise ValueError(f"no bank yet for arm {arm!r}: call make_bank(setup, source_runs) first")
    return TrainConfig.from_dict({**s.target.to_dict(), "seed": seed,
                                  **arm_fields(arm, s.bank, seed, s.n_source_prompts, s.vae_epochs)})


def target_configs(s: Setup) -> list[TrainConfig]:
    """Every arm x seed on the target (needs the bank: run :func:`make_bank` first)."""
    if s.bank is None:
        raise ValueError("no bank yet: call make_bank(setup, source_runs) first")
    s.configs = [target_config(s, a, seed) for a in s.arms for seed in s.seeds]
    return s.configs


def plan(profile: str = "cpu", bank: str | None = None) -> list[TrainConfig]:
    """Every config the notebook trains in ``profile`` that can be known before training, in the order it
    asks for them: first the SQuAD source runs (``source_configs()``), then the MATH target runs
    (:func:`target_configs`, arm by arm, seed by seed), from the notebook's default settings.

    The target runs of the posterior arms (:data:`POSTERIOR_ARMS`) cannot be planned before the source runs
    have trained: their prior's ``bank`` parameter, part of their config and so of their key, is the hash that
    :func:`make_bank` gets from :func:`priorlib.priors.posterior.save_bank`, a hash of the trained prompts'
    values (with the source runs' keys in its metadata), not of the source configs alone; and a config naming
    a bank is refused unless that bank is on disk (the prior's parameters load it). So without ``bank`` the
    plan holds the source runs and the control arms' target runs (:data:`CONTROL_ARMS`) and leaves out the
    posterior arms' runs, which :func:`deferred` lists (same sizes as every target run). Given ``bank`` (the
    hash :func:`make_bank` returned, with the bank in the cache), it is every run, exactly as the notebook
    asks for them; so it is once every source run is in the evidence bank (:func:`bank_from_evidence` makes
    the posterior bank from those, as the notebook will). Nothing loads a model, nothing trains.
    """
    from priorlib.compendium.setup import setup
    s = setup(NOTEBOOK, profile)
    source = s.source_configs()
    if bank is None:
        bank = bank_from_evidence(s, source)
    if bank is None:
        target = [target_config(s, a, seed) for a in s.arms if a in CONTROL_ARMS for seed in s.seeds]
    else:
        s.bank, s.n_source_prompts = bank, len(source)  # make_bank stacks one prompt per source run
        target = target_configs(s)
    return ex.unique(source + target)


def bank_from_evidence(s: Setup, source) -> str | None:
    """The posterior bank's hash when every source run of ``source`` is in the evidence bank: made from
    those runs by :func:`make_bank`, exactly as the notebook makes it when it executes against the bank
    (so the posterior arms' configs, which name it, get the keys the notebook will ask for); else ``None``."""
    from priorlib.compendium import evidence
    found = [evidence.lookup(c) for c in source]
    if not found or any(r is None for r in found):
        return None
    return make_bank(s, found)


def deferred(profile: str = "cpu") -> list[tuple[str, int]]:
    """``(arm, seed)`` of each target run :func:`plan` leaves out without a bank, in the notebook's order. Each
    is a run of the target's sizes (``setup(NOTEBOOK, profile).target``: steps, batch, evaluation) whose
    prior is fitted to the bank first (a Gaussian, a VAE of ``vae_epochs`` epochs, or a copy)."""
    from priorlib.compendium.setup import setup
    s = setup(NOTEBOOK, profile)
    return [(a, seed) for a in s.arms if a not in CONTROL_ARMS for seed in s.seeds]


# ------------------------------------------------------------------------------------------ source
def trained_prompts(runs, key: str = "soft") -> torch.Tensor:
    """Last-checkpoint prompts of ``runs``: ``[P, n, d]``."""
    return torch.stack([r.checkpoints()[-1][1][key].float() for r in runs])


def sampled_prompts(runs, key: str = "soft") -> torch.Tensor:
    """Step-0 prompts (the prior's draws) of ``runs``: ``[P, n, d]``."""
    return torch.stack([r.checkpoints()[0][1][key].float() for r in runs])


def make_bank(s: Setup, runs) -> str:
    """Save the trained source prompts as a posterior bank; returns (and records in ``s``) its hash."""
    from priorlib.priors.posterior import save_bank
    x = trained_prompts(runs)  # [P, n, d]
    meta = {"task": "squad", "prior": SOURCE_PRIOR, "lr": s.source_lr, "model": s.source.model,
            "seeds": [r.config.seed for r in runs], "runs": [r.config.key() for r in runs]}
    s.bank = save_bank(x, meta)
    s.n_source_prompts = x.shape[0]
    return s.bank


def bank_shift(runs, reference, *, gap: float, seed: int = 0) -> tuple[dict, pd.DataFrame]:
    """How far the SQuAD posterior moved from its prior, on all source runs pooled.

    Returns ``(numbers, per-run placement)``: median Mahalanobis distance to the token-embedding Gaussian
    of the sampled and of the trained vectors, median movement (L2) against the token embeddings'
    neighbour gap ``gap`` with the most the optimiser could move (``movement_bound``), median norms, and
    the protocol's separation of trained from sampled vectors (:func:`decide.cluster`).
    ``moved_outcome``: not testable when the bound is below ``gap``, else agrees when the median movement
    is above it; ``moved``: that outcome agrees; ``distinct``: the separation agrees.
    """
    place = sec.placement(runs, reference)
    a = sampled_prompts(runs).reshape(-1, reference.dim)  # [N, d]
    b = trained_prompts(runs).reshape(-1, reference.dim)  # [N, d]
    g = reference.fit()
    bound = decide.movement([r.config for r in runs], reference.dim, gap)
    sep = decide.cluster(a, b, seed=seed)
    out = {"n_vectors": int(b.shape[0]), "n_runs": len(runs), "token_neighbour_gap": float(gap),
           "median_mahalanobis_sampled": float(g.mahalanobis(a).median()),
           "median_mahalanobis_trained": float(g.mahalanobis(b).median()),
           "median_mahalanobis_tokens": float(g.mahalanobis(reference.vectors[:4096]).median()),
           "median_moved_l2": float((b - a).norm(dim=-1).median()), "movement_bound": bound.bound,
           "median_norm_sampled": float(a.norm(dim=-1).median()), "median_norm_trained": float(b.norm(dim=-1).median()),
           "median_norm_tokens": float(reference.vectors.norm(dim=-1).median()),
           "separation": {"silhouette": sep.estimate, "ci": [sep.ci_low, sep.ci_high], "null_upper": sep.null_upper,
                          "outcome": sep.outcome.value, "reason": sep.reason}}
    if bound.outcome is Outcome.NOT_TESTABLE:
        out["moved_outcome"] = bound.outcome.value
    else:
        out["moved_outcome"] = outcome_of(out["median_moved_l2"] > gap).value
    out["moved"] = out["moved_outcome"] == Outcome.AGREES.value
    out["distinct"] = sep.outcome is Outcome.AGREES
    return out, place


def shift_sentence(shift: dict) -> str:
    """The caption of :func:`bank_shift`, including the vacuity warning when the bank did not move."""
    txt = (f"The {shift['n_vectors']} trained vectors moved a median L2 of **{shift['median_moved_l2']:.3g}** from "
           f"their prior draws (token embeddings' neighbour gap {shift['token_neighbour_gap']:.3g}; the optimiser could "
           f"move them at most {shift['movement_bound']:.3g}; median row "
           f"norm of the token embeddings {shift['median_norm_tokens']:.3g}, of the prompts "
           f"{shift['median_norm_sampled']:.3g} → {shift['median_norm_trained']:.3g}). Their median Mahalanobis "
           f"distance to the token-embedding Gaussian went from {shift['median_mahalanobis_sampled']:.3g} (sampled) "
           f"to **{shift['median_mahalanobis_trained']:.3g}** (trained; token embeddings themselves: "
           f"{shift['median_mahalanobis_tokens']:.3g}). Trained against sampled vectors, the book's cluster rule: "
           f"**{shift['separation']['outcome']}** ({shift['separation']['reason']}).")
    if not shift["moved"]:
        return txt + (" **The posterior did not move beyond the neighbour gap: the transfer test below is vacuous** "
                      "(a posterior prior is then just its source prior).")
    if not shift["distinct"]:
        return txt + (" The prompts moved, but as a cloud they are not shown apart from their prior: the fitted "
                      "posterior priors (Gaussian, VAE) are close to the source prior, only the copy arm differs.")
    return txt + " The posterior is a distribution of its own, so the transfer test is not vacuous."


def vae_on_bank(s: Setup, seed: int = 0) -> dict:
    """Collapse diagnostics of the VAE the ``posterior-vae`` arm samples from (cached, trained once)."""
    from priorlib.priors.posterior import PosteriorParams, load_bank
    from priorlib.priors.vae import load_or_train_vae, vae_diagnostics
    from priorlib.compendium.arms import collapse_kind
    bank = load_bank(s.bank)
    p = PosteriorParams(bank=s.bank, fit="vae", epochs=s.vae_epochs).vae_params()
    d = vae_diagnostics(load_or_train_vae(bank.reference(), p), bank.vectors, torch.Generator().manual_seed(seed))
    return {"active_units": d["active_units"], "latent_dim": d["latent_dim"], "variance_ratio": d["variance_ratio"],
            "recon_mse": d["recon_mse"], "kl_total": float(d["kl_per_dim"].sum()), "epochs": p.epochs,
            "collapse": collapse_kind(d["active_units"], d["latent_dim"], d["variance_ratio"]),
            "kl_per_dim": [float(v) for v in d["kl_per_dim"]]}


# ------------------------------------------------------------------------------------------ target
def transfer_rows(runs) -> tuple[pd.DataFrame, dict]:
    """One row per target run (arm, seed, initial/final val loss and accuracy, steps to the targets)
    and the targets: training loss = the worst final 5-step-mean training loss over all runs, validation
    loss = the worst final validation loss, so every run reaches both and the steps compare."""
    rows = ex.run_rows(runs, fields=("seed",))
    rows.insert(0, "arm", [arm_of(r.config) for r in runs])
    target = ex.add_steps_to_target(rows, runs)
    rows["steps_to_target"] = pd.to_numeric(rows["steps_to_target"], errors="coerce").astype(float)
    vtarget, vsteps = sec.val_steps_to_target(runs)
    rows["val_steps_to_target"] = vsteps
    rows["val_loss_drop"] = rows["initial_val_loss"] - rows["final_val_loss"]
    return rows, {"train_loss_target": float(target), "val_loss_target": float(vtarget)}


SUMMARY_METRICS = ("steps_to_target", "val_steps_to_target", "initial_val_loss", "final_val_loss", "final_accuracy",
                   "initial_val_token_accuracy", "final_val_token_accuracy")


def arm_stats(rows: pd.DataFrame, metric: str) -> dict[str, dict]:
    """``{arm: {"mean", "sd", "min", "max", "n"}}`` of ``metric`` over seeds (sd 0 with one seed)."""
    out = {}
    for arm, v in rows.groupby("arm", sort=False)[metric]:
        v = v.astype(float).dropna()
        out[arm] = {"mean": float(v.mean()) if len(v) else float("nan"),
                    "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                    "min": float(v.min()) if len(v) else float("nan"),
                    "max": float(v.max()) if len(v) else float("nan"), "n": int(len(v))}
    return out


def arm_summary(rows: pd.DataFrame, metrics=SUMMARY_METRICS) -> pd.DataFrame:
    """Per arm: each metric as ``mean ± sd (min–max)`` over seeds."""
    metrics = [m for m in metrics if m in rows]
    table = {}
    for m in metrics:
        for arm, st in arm_stats(rows, m).items():
            table.setdefault(arm, {"arm": arm, "seeds": st["n"]})[m] = \
                f"{st['mean']:.3g} ± {st['sd']:.2g} ({st['min']:.3g}–{st['max']:.3g})"
    from priorlib.compendium.tables import result_table
    return result_table(pd.DataFrame(list(table.values())))


SMOOTH = 5  # training-loss curves: a running mean over SMOOTH steps (the smoothing of the steps to target)


def train_curves(runs, smooth: int = SMOOTH) -> pd.DataFrame:
    """Long table ``arm, seed, step, loss`` of the ``smooth``-step mean training loss (nats/token)."""
    out = []
    for r in runs:
        h = r.history()
        out.append(pd.DataFrame({"arm": arm_of(r.config), "seed": r.config.seed, "step": h["step"],
                                 "loss": h["loss"].rolling(smooth, min_periods=1).mean()}))
    return pd.concat(out, ignore_index=True)


def val_curves(runs) -> pd.DataFrame:
    """Long table ``arm, seed, step, val_loss`` of every evaluation (nats/token; the learning curve,
    ``plateau_loss``, which every evaluation computes)."""
    out = []
    for r in runs:
        e = r.evals().sort_values("step")
        out.append(pd.DataFrame({"arm": arm_of(r.config), "seed": r.config.seed, "step": e["step"],
                                 "val_loss": e["plateau_loss"]}))
    return pd.concat(out, ignore_index=True)


def early_loss(curves: pd.DataFrame, ref: str = "fitted-gaussian", fraction: float = 1 / 3) -> dict:
    """An exploratory speed measure, chosen after the steps-to-target comparison came out inside the noise:
    the validation loss at the first evaluation at or after ``fraction`` of training, per arm (mean, sd
    over seeds), and which arms the protocol shows lower than ``ref`` there (``better``, lower loss). It is
    reported beside the verdicts, not as one of them: a measure picked after seeing the data is not a test.
    """
    last = int(curves["step"].max())
    steps = sorted(int(x) for x in curves["step"].unique() if x >= fraction * last)
    step = steps[0] if steps else last
    at = curves[curves["step"] == step].rename(columns={"val_loss": "v"})
    stats = arm_stats(at, "v")
    lower = [a for a in stats if a != ref and ref in stats and decide.protocol.better(
        at.loc[at["arm"] == a, "v"].astype(float).dropna(), at.loc[at["arm"] == ref, "v"].astype(float).dropna(),
        higher_is_better=False).outcome is Outcome.AGREES]
    return {"step": step, "of": last, "val_loss": stats, "ref": ref, "lower_than_ref": lower}


def early_loss_sentence(e: dict) -> str:
    st, ref = e["val_loss"], e["ref"]
    order = sorted(st, key=lambda a: st[a]["mean"])
    return (f"**Exploratory** (chosen after the steps-to-target comparison was inconclusive, so not a test): at step "
            f"{e['step']} of {e['of']} the validation loss is " + "; ".join(
                f"{a} {st[a]['mean']:.3f} ± {st[a]['sd']:.3f}" for a in order) +
            f". Lower than {ref} by the protocol's rule (95% interval of the difference below 0): "
            + (", ".join(e["lower_than_ref"]) if e["lower_than_ref"] else "none") + ".")


def copy_sources(runs, bank: str) -> dict[int, int | None]:
    """``{target seed: source prompt}`` the copy arm started from (read off the step-0 checkpoint)."""
    from priorlib.priors.posterior import load_bank
    b = load_bank(bank)
    out = {}
    for r in runs:
        if arm_of(r.config) != "posterior-copy":
            continue
        x0 = r.checkpoints()[0][1]["soft"].float()
        hit = [k for k in range(b.n_prompts) if torch.equal(b.prompt(k)[: len(x0)], x0)]
        out[r.config.seed] = hit[0] if hit else None
    return out


# ------------------------------------------------------------------------------------------ captions
SEED_DOT_PANELS = (("steps_to_target", "steps to the training-loss target"),
                   ("val_steps_to_target", "steps to the validation-loss target"),
                   ("final_val_loss", "final validation loss (nats/token)"),
                   ("final_accuracy", "final MATH accuracy, exact match (%)"),
                   ("final_val_token_accuracy", "answer-token accuracy, teacher-forced (%)"))


def arms_in(rows: pd.DataFrame) -> list[str]:
    """The arms of ``rows`` in their order of appearance (the figures' legend order)."""
    return list(dict.fromkeys(rows["arm"]))


def transfer_sentence(rows: pd.DataFrame, targets: dict, copies: dict, *, n_seeds: int, seconds: float) -> str:
    """The target runs in numbers: how many, the targets the steps count to, the arm with the lowest mean
    final validation loss, where each arm's untrained prompts start, and which source prompt each copy
    seed took."""
    init, fin = arm_stats(rows, "initial_val_loss"), arm_stats(rows, "final_val_loss")
    if not fin:
        raise ValueError("no target runs to summarise")
    best = min(fin, key=lambda a: fin[a]["mean"])
    return (f"{len(rows)} MATH runs ({len(fin)} arms × {n_seeds} seeds; training or loading took {seconds:.0f} s). "
            f"Training-loss target {targets['train_loss_target']:.3f}, validation-loss target "
            f"{targets['val_loss_target']:.3f} nats/token. Lowest mean final validation loss: **{best}** "
            f"({fin[best]['mean']:.3f} ± {fin[best]['sd']:.3f}). Untrained prompts start at "
            + ", ".join(f"{a} {init[a]['mean']:.2f}" for a in init) + " nats/token. Copy arm: target seed → source "
            f"prompt {copies}.")


def speed_sentence(rows: pd.DataFrame, ref: str = "fitted-gaussian") -> str:
    """The fewest mean steps to the target (the speed measure of :func:`steps_metric`) against ``ref``'s,
    and each arm's final exact-match and teacher-forced answer-token accuracy, mean ± sd over seeds."""
    metric = steps_metric(rows)
    st = arm_stats(rows, metric)
    fast = min(st, key=lambda a: st[a]["mean"])
    return (f"Fewest steps to the target on average ({metric.replace('_', ' ')}): **{fast}** "
            f"({st[fast]['mean']:.3g} ± {st[fast]['sd']:.2g}); the source's own prior, {ref}, needs "
            + (f"{st[ref]['mean']:.3g} ± {st[ref]['sd']:.2g}" if ref in st else "n/a (not run)") + ". Final accuracy "
            "per arm: " + "; ".join(f"{a} {v['mean']:.1f} ± {v['sd']:.1f}%" for a, v in arm_stats(rows, "final_accuracy").items())
            + ". Exact match is a hard measure for a 135M model on this arithmetic; the share of answer tokens the "
            "prompted model predicts given the gold tokens before them (teacher-forced answer-token accuracy) is finer: "
            + "; ".join(f"{a} {v['mean']:.1f} ± {v['sd']:.1f}%"
                        for a, v in arm_stats(rows, "final_val_token_accuracy").items()) + ".")


def _seeds_per_arm(counts) -> str:
    lo, hi = int(min(counts)), int(max(counts))
    return f"{hi} seed{'s' * (hi != 1)} each" if lo == hi else f"{lo}–{hi} seeds per arm"


def _fastest_vs_ref(st: dict, ref: str) -> str:
    """``fastest arm m ± sd steps, against ref's m ± sd`` from :func:`arm_stats` of a steps measure."""
    fast = min(st, key=lambda a: st[a]["mean"])
    steps = f"{_ms(st[fast])} steps (mean ± sd over seeds)"
    if fast == ref:
        return f"{fast}, the source's own prior, {steps}"
    return f"{fast}, {steps}" + (f", against {_ms(st[ref])} for the source's own prior, {ref}" if ref in st
                                 else f" ({ref} not run)")


def curves_caption(curves: pd.DataFrame, rows: pd.DataFrame, target: float, *, kind: str = "training",
                   ref: str = "fitted-gaussian", questions: str = "") -> str:
    """Caption of a loss-curve figure (``plots.transfer.arm_curves``): ``curves`` is :func:`train_curves`
    (``kind="training"``) or :func:`val_curves` (``kind="validation"``), ``rows`` :func:`transfer_rows`' rows
    and ``target`` the dashed line (``targets["train_loss_target"]`` or ``["val_loss_target"]``). The number:
    which arm reaches the target in the fewest steps on average, against the source's own prior ``ref``
    (and, for validation, which arm ends lowest). ``questions``: how many held-out problems the learning
    curve averages over (``plots.training.curve_questions``); the final loss is on the whole held-out set."""
    if kind not in ("training", "validation"):
        raise ValueError(f"kind must be 'training' or 'validation', got {kind!r}")
    val = kind == "validation"
    first = f"the first {questions} " if questions else "the fixed "
    what = (f"MATH learning curve: validation answer loss (nats/token, y) on {first}held-out problems at each "
            "evaluation" if val else f"MATH training answer loss (nats/token, y; a {SMOOTH}-step running mean)")
    st = arm_stats(rows, "val_steps_to_target" if val else "steps_to_target")
    txt = (f"{what} against the training step (x): one line per prior arm, the mean over seeds "
           f"({_seeds_per_arm(curves.groupby('arm')['seed'].nunique())}), and a band from the lowest to the highest seed; "
           f"the dashed line is the {kind}-loss target {target:.3f}, the worst final value over all runs, so every "
           f"run reaches it. Fewest steps to it on average: {_fastest_vs_ref(st, ref)}")
    if val:
        fin = arm_stats(rows, "final_val_loss")
        best = min(fin, key=lambda a: fin[a]["mean"])
        txt += f"; lowest final validation loss (the whole held-out set): {best}, {_ms(fin[best], True)} nats/token"
    return txt + "."


def seed_dots_caption(rows: pd.DataFrame, panels, ref: str = "fitted-gaussian") -> str:
    """Caption of the per-seed figure (``plots.transfer.seed_dots(rows, panels)``; ``panels``: its
    ``(column, axis label)`` pairs): what a panel, dot and bar are, the steps measure the speed verdicts use
    (:func:`steps_metric`) with the fastest arm against ``ref``, the best final validation loss and the range
    of exact-match accuracy over all runs."""
    labels = dict(panels)
    metric = steps_metric(rows)
    seeds = sorted(int(s) for s in rows["seed"].unique())
    txt = (f"One panel per measure (y, named with its units on the axis) against the prior arm (x): one dot per run, its "
           f"marker the seed ({len(seeds)} seed{'s' * (len(seeds) != 1)}: {', '.join(map(str, seeds))}), the black bar the "
           f"arm's mean over seeds. ")
    found = []
    if metric in labels:
        found.append(f"on {labels[metric]}, the measure the speed verdicts use, the fewest on average: "
                     f"{_fastest_vs_ref(arm_stats(rows, metric), ref)}")
    if "final_val_loss" in labels:
        fin = arm_stats(rows, "final_val_loss")
        best = min(fin, key=lambda a: fin[a]["mean"])
        found.append(f"the lowest mean final validation loss is {best}'s, {_ms(fin[best], True)} nats/token")
    if "final_accuracy" in labels:
        acc = rows["final_accuracy"].astype(float)
        found.append(f"exact-match accuracy runs {acc.min():.1f}–{acc.max():.1f}% over all {len(rows)} runs")
    return txt + ("; ".join(found)[:1].upper() + "; ".join(found)[1:] + "." if found else "")


# ------------------------------------------------------------------------------------------ verdicts
def _ms(st: dict, fixed: bool = False) -> str:
    """``mean ± sd``: losses with three decimals (``fixed``), step counts with three significant digits."""
    return f"{st['mean']:.3f} ± {st['sd']:.3f}" if fixed else f"{st['mean']:.3g} ± {st['sd']:.2g}"


def faster_than(rows: pd.DataFrame, arm: str, ref: str, measure: str):
    """:func:`decide.faster` of ``arm`` against ``ref`` on the steps measure ``measure``."""
    return decide.faster(decide.arm(rows, measure, arm, arm=arm), decide.arm(rows, measure, ref, arm=ref))


def verdicts_08(shift: dict, vae: dict, rows: pd.DataFrame, targets: dict) -> tuple[list[Verdict], dict]:
    """Closing verdicts of notebook 08 and the numbers behind them.

    0. *Precondition*: the SQuAD prompts left their prior (``shift["moved_outcome"]``, :func:`bank_shift`:
       the movement bound beside the token neighbour gap, then median movement > the gap).
    1. *Posteriors are usable priors for another task*: for each fitted posterior arm (Gaussian, VAE),
       :func:`priorlib.compendium.arms.usable` against ``fitted-gaussian`` (every seed's loss falls, and
       not worse: TOST or better; the rule of notebook 05).
    2. *A posterior prior speeds up learning vs the prior it came from*: each fitted posterior arm needs
       fewer steps than ``fitted-gaussian`` (:func:`faster_than`; :func:`steps_metric` says which loss decides).
    3. *The warm start (copy) speeds up learning vs the source prior*: the same rule for ``posterior-copy``.
    4. *The VAE prior collapses* (paper §4.6), here trained on the bank: notebook 06's rule.

    Rows 1-3 are inconclusive unless the precondition agrees (the test would be vacuous).
    """
    from priorlib.compendium.arms import COLLAPSE_ACTIVE_SHARE, COLLAPSE_VARIANCE_RATIO
    arms = list(dict.fromkeys(rows["arm"]))
    loss, acc = arm_stats(rows, "final_val_loss"), arm_stats(rows, "final_accuracy") if "final_accuracy" in rows else {}
    metric = steps_metric(rows)
    steps = arm_stats(rows, metric)
    fitted = [a for a in FITTED_ARMS if a in arms]
    controls = [a for a in CONTROL_ARMS if a in arms]
    num = {"final_val_loss": loss, "final_accuracy": acc, "steps": steps, "steps_metric": metric, **targets,
           "shift": shift, "vae": {k: v for k, v in vae.items() if k != "kl_per_dim"}}
    which = "validation" if metric == "val_steps_to_target" else "5-step-mean training"
    tgt = targets["val_loss_target" if metric == "val_steps_to_target" else "train_loss_target"]
    rule = f"steps to the {which} loss target {tgt:.3f} (the worst final value over all runs)"
    tok = arm_stats(rows, "final_val_token_accuracy") if "final_val_token_accuracy" in rows else {}
    num["final_val_token_accuracy"] = tok
    acc_txt = ""
    if tok:
        acc_txt += ("; answer-token accuracy under teacher forcing " +
                    ", ".join(f"{a} {tok[a]['mean']:.1f} ± {tok[a]['sd']:.1f}%" for a in arms))
    if acc:
        acc_txt += "; final accuracy " + ", ".join(f"{a} {acc[a]['mean']:.1f} ± {acc[a]['sd']:.1f}%" for a in arms)
        if all(st["max"] == 0 for st in acc.values()):
            acc_txt += " (0 for every run: accuracy cannot tell the priors apart here, the loss decides)"
    pre = Outcome(shift["moved_outcome"])
    vacuous = "" if pre is Outcome.AGREES else f"; the posterior did not leave its prior ({pre.value}): the test is vacuous"

    def gated(outcome: Outcome) -> Outcome:
        return outcome if pre is Outcome.AGREES else Outcome.INCONCLUSIVE

    out = [Verdict(
        "Soft prompts trained at a high learning rate leave their prior (precondition of the transfer test; "
        "not a claim of the paper)",
        f"median movement {shift['median_moved_l2']:.3g} vs token neighbour gap {shift['token_neighbour_gap']:.3g} "
        f"(the most the optimiser could move: {shift['movement_bound']:.3g}); median Mahalanobis to the token Gaussian "
        f"{shift['median_mahalanobis_sampled']:.3g} → {shift['median_mahalanobis_trained']:.3g}; trained vs sampled "
        f"vectors: {shift['separation']['outcome']} ({shift['separation']['reason']}; {shift['n_vectors']} vectors)",
        pre, claim_id="posterior-leaves-prior")]
    ref = "fitted-gaussian"
    if fitted and ref in arms:
        tests = {a: usable(rows, a, ref) for a in fitted}
        out.append(Verdict(
            "Posteriors trained on one task are usable priors for another (the paper's hypothesis)",
            "final validation loss " + "; ".join(f"{a} {_ms(loss[a], True)}" for a in fitted) + " vs controls "
            + "; ".join(f"{c} {_ms(loss[c], True)}" for c in controls)
            + ". Usable (loss falls, not worse than fitted-gaussian): "
            + "; ".join(f"{o.value} ({why})" for o, why in tests.values()) + acc_txt + vacuous,
            gated(decide.every(o for o, _ in tests.values())), claim_id="posterior-usable-prior"))
    else:
        out.append(Verdict("Posteriors trained on one task are usable priors for another (the paper's hypothesis)",
                           f"needs a fitted posterior arm and the {ref} arm", Outcome.INCONCLUSIVE,
                           claim_id="posterior-usable-prior"))
    if ref in arms and fitted:
        fast = {a: faster_than(rows, a, ref, metric) for a in fitted}
        out.append(Verdict(
            "A posterior prior speeds up learning a new task vs the prior it came from",
            rule + ": " + "; ".join(f"{a} {_ms(steps[a])}" for a in fitted)
            + f" vs {ref} {_ms(steps[ref])}; fewer steps, by the protocol (every fitted posterior arm): "
            + "; ".join(f"{a} {r.outcome.value} ({r.reason})" for a, r in fast.items()) + vacuous,
            gated(decide.every(r.outcome for r in fast.values())), claim_id="posterior-prior-faster"))
    if ref in arms and "posterior-copy" in arms:
        fast = faster_than(rows, "posterior-copy", ref, metric)
        out.append(Verdict(
            "A trained prompt from another task is a faster start than a fresh draw from its prior (warm start)",
            rule + f": posterior-copy {_ms(steps['posterior-copy'])} vs {ref} {_ms(steps[ref])} "
            f"({fast.reason}); final validation loss {_ms(loss['posterior-copy'], True)} vs "
            f"{_ms(loss[ref], True)}" + vacuous, gated(fast.outcome), claim_id="posterior-copy-faster"))
    collapsed = vae["collapse"] != "none"
    out.append(Verdict(
        "The VAE prior collapsed (paper §4.6; here a VAE trained on the SQuAD posterior bank)",
        f"{vae['active_units']} of {vae['latent_dim']} latent units active, decoded samples keep "
        f"{vae['variance_ratio']:.3f} of the bank's variance ({vae['epochs']} epochs on {shift['n_vectors']} "
        f"vectors; collapsed: active share < {COLLAPSE_ACTIVE_SHARE} or variance ratio < {COLLAPSE_VARIANCE_RATIO})",
        outcome_of(collapsed), claim_id="posterior-vae-collapses"))
    return out, num


def closing_note(rows: pd.DataFrame, numbers: dict, shift: dict) -> str:
    """The transfer result in words, with its spread over seeds."""
    metric = numbers["steps_metric"]
    steps, loss = numbers["steps"], numbers["final_val_loss"]
    tok = numbers.get("final_val_token_accuracy") or {}
    which = "validation" if metric == "val_steps_to_target" else "training"
    n = int(rows.groupby("arm").size().min())
    lines = [f"Over {n} seed(s) per arm, steps to the common {which}-loss target (mean ± sd, min–max):"]
    for a in steps:
        st, ls = steps[a], loss[a]
        lines.append(f"- **{a}**: {st['mean']:.3g} ± {st['sd']:.2g} steps ({st['min']:.3g}–{st['max']:.3g}); "
                     f"final validation loss {ls['mean']:.3f} ± {ls['sd']:.3f} ({ls['min']:.3f}–{ls['max']:.3f})"
                     + (f"; answer-token accuracy {tok[a]['mean']:.1f} ± {tok[a]['sd']:.1f}%" if a in tok else ""))
    fast = min(steps, key=lambda a: steps[a]["mean"])
    lines.append("")
    lines.append(f"Fastest on average: **{fast}**. " + (
        "The SQuAD posterior did not move away from its prior, so this comparison cannot test the hypothesis."
        if not shift["moved"] else
        "Differences count only when the protocol's 95% interval of the difference excludes 0 (at least 3 seeds "
        "per arm); the verdicts above say which do."))
    return "\n".join(lines)
