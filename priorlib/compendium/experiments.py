"""Experiment grids for chapters 02-09: run grids over priors x learning rates x seeds (sizes from
:mod:`priorlib.compendium.profiles`), quality tables (mean and spread over seeds), and where prompts sit.

Notebooks call these; they hold no logic of their own.
"""
from __future__ import annotations

import itertools
import os

import pandas as pd
import torch
from tqdm.auto import tqdm

from priorlib import runstore
from priorlib.compendium.profiles import RunSizes, run_sizes
from priorlib.config import TrainConfig


def base_config(profile: str | RunSizes, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` with the profile's sizes (:data:`priorlib.compendium.profiles.RUN`); ``overrides``
    win (None values are ignored)."""
    p = run_sizes(profile) if isinstance(profile, str) else profile
    d = dict(model=p.model, steps=p.steps, batch_size=p.batch_size, eval_size=p.eval_size, max_length=p.max_length,
             checkpoint_every=p.checkpoint_every, n_train=p.n_train, reference_texts=p.reference_texts,
             max_new_tokens=p.max_new_tokens, math_per_module=p.math_per_module, eval_every=p.checkpoint_every,
             warmup_steps=max(1, p.steps // 10), device="cuda" if torch.cuda.is_available() else "cpu")
    d.update({k: v for k, v in overrides.items() if v is not None})
    d.update(p.design)  # the profile's stopping rule holds for every run of it
    return TrainConfig(**d)


def grid(base: TrainConfig, **axes) -> list[TrainConfig]:
    """Cartesian product: ``grid(cfg, prior=["isotropic", "xavier"], lr=[1e-3], seed=[0, 1])``.

    A value may be a dict of several fields (e.g. a prior with its params:
    ``prior=[{"prior": "isotropic", "prior_params": {"sigma": "0.02"}}, ...]``).
    """
    names = list(axes)
    out = []
    for values in itertools.product(*(axes[n] for n in names)):
        d = base.to_dict()
        for name, v in zip(names, values):
            d.update(v if isinstance(v, dict) else {name: v})
        out.append(TrainConfig.from_dict(d))
    return out


def unique(configs) -> list[TrainConfig]:
    """``configs`` without repeated keys, each at its first place: what :func:`run_all` records as a
    chapter's plan (:func:`priorlib.compendium.evidence.record_plan` keeps one entry per key)."""
    seen, out = set(), []
    for cfg in configs:
        if cfg.key() not in seen:
            seen.add(cfg.key())
            out.append(cfg)
    return out


def run_all(configs: list[TrainConfig], *, model, tokenizer, root=None, progress: bool = True) -> list[runstore.Run]:
    """Every config's run, sharing one loaded model: from the evidence bank when it holds it
    (:mod:`priorlib.compendium.evidence`), else trained (or reused) in the local run store. Under
    ``priorlib book --bank-only`` a run the bank lacks raises :class:`~priorlib.compendium.evidence.NotInBank`
    before anything trains."""
    from priorlib.compendium import evidence
    evidence.record_plan(configs)
    if evidence.bank_only():
        evidence.check_in_bank(configs, where=os.environ.get(evidence.CHAPTER_ENV, ""))
    runs = []
    for cfg in tqdm(configs, desc="runs", disable=not progress):
        run = evidence.lookup(cfg)
        if run is None:
            run = runstore.train(cfg, root=root, model=model, tokenizer=tokenizer, progress=False)
            evidence.deposit(run)
        runs.append(run)
    return runs


def label(cfg: TrainConfig, fields=("prior", "lr")) -> str:
    return " ".join(f"{cfg.prior}" if f == "prior" else f"{f}={getattr(cfg, f)}" for f in fields)


def run_rows(runs: list[runstore.Run], fields=("prior", "lr", "seed")) -> pd.DataFrame:
    """One row per run: its grid fields, initial and final quality, loss and steps-to-target, and
    ``plateaued`` (:func:`priorlib.compendium.decide.plateaued`: False unless the trainer said so)."""
    from priorlib.compendium.decide import plateaued
    rows = []
    for r in runs:
        m = r.metrics
        row = {f: (getattr(r.config, f).value if hasattr(getattr(r.config, f), "value") else getattr(r.config, f))
               for f in fields}
        for when in ("initial", "final"):
            for k, v in (m[when] or {}).items():
                if k not in ("step", "examples"):
                    row[f"{when}_{k}"] = v
        row["median_s_per_step"] = m["median_s_per_step"]
        row["plateaued"] = plateaued(m)
        row["key"] = r.config.key()
        rows.append(row)
    return pd.DataFrame(rows)


def quality_table(rows: pd.DataFrame, by=("prior", "lr"),
                  metrics=("final_val_loss", "final_f1", "final_exact_match", "final_accuracy")) -> pd.DataFrame:
    """Mean and standard deviation over seeds for each group (``"1.234 ± 0.012"``, three decimals, as
    ``results.json`` keeps them) and the group's size in ``seeds``. Displayed the book's way
    (:func:`~priorlib.compendium.tables.summary`: three significant figures, ``n`` per cell, "—" instead of
    "± 0.0" for a single seed, readable headers, no index)."""
    from priorlib.compendium.tables import result_table, summary
    metrics = [m for m in metrics if m in rows]
    g = rows.groupby(list(by))[metrics]
    out = g.mean().round(3).astype(str) + " ± " + g.std(ddof=1).fillna(0).round(3).astype(str)
    out["seeds"] = g.size()
    return result_table(out.reset_index(), display=summary(rows, list(by), metrics, n_column="seeds"))


def add_steps_to_target(rows: pd.DataFrame, runs: list[runstore.Run], target: float | None = None) -> float:
    """Steps until the smoothed training loss first reaches ``target`` (default: the worst final loss
    over all runs, so every run reaches it and the comparison is fair)."""
    finals = [r.history()["loss"].rolling(5, min_periods=1).mean().iloc[-1] for r in runs]
    target = float(max(finals)) if target is None else target
    rows["steps_to_target"] = [r.steps_to(target) for r in runs]
    return target


def placement_rows(runs: list[runstore.Run], reference, key: str = "soft", fields=("prior", "lr", "seed")) -> pd.DataFrame:
    """Where the prior sample (step 0) and the trained prompt (last step) sit relative to ``reference``.

    ``moved_l2``: the median over the prompt's vectors of how far each ended from its start; ``path_l2``: the
    median of each vector's path over the saved checkpoints (the sum of its steps from one checkpoint to the
    next), a lower bound on the distance it travelled; ``moved_l2 <= path_l2`` always."""
    from priorlib.metrics.placement import placement_metrics
    rows = []
    for r in runs:
        ck = r.checkpoints()
        frames = [t[key].float() for _, t in ck]
        path = float(torch.stack([(b - a).norm(dim=-1) for a, b in zip(frames, frames[1:])]).sum(0).median()) \
            if len(frames) > 1 else 0.0
        for when, (step, tensors) in (("sampled", ck[0]), ("trained", ck[-1])):
            m = placement_metrics(tensors[key], reference, baseline_size=256)
            row = {f: getattr(r.config, f) for f in fields}
            row.update(when=when, step=step, median_nn_l2=m["median_nn_l2"], median_nn_cos=m["median_nn_cos"],
                       median_mahalanobis=m["median_mahalanobis"], share_in_hdr=m["share_in_hdr"],
                       moved_l2=float((ck[-1][1][key] - ck[0][1][key]).norm(dim=-1).median()), path_l2=path)
            rows.append(row)
    return pd.DataFrame(rows)
