"""What the evidence costs: CPU-seconds per phase, measured here, and the bank's projected CPU-hours.

    priorlib evidence costs --measure    # one short representative run per kind of run, then the table
    priorlib evidence costs              # the table again, from benchmarks/costs.json

A *kind* of run is what sets its price: model, task, method (and whether deep prompts run on cached lower
layers), sequence length, batch size and held-out sizes. For each kind the chapters' plans hold
(:func:`priorlib.compendium.evidence.plan_all`), ``--measure`` trains one run of that kind for a few steps
with a periodic evaluation every few steps and the final greedy decoding, in a throw-away run store, and
reads the phases from its own logs (every evaluation row records its seconds, see the trainer):

- ``train``: one optimizer step (median; the first step, which also compiles, is counted in ``overhead``);
- ``curve``: one periodic evaluation (the learning curve's ``plateau_eval_size`` questions);
- ``full``: one full validation pass (step 0 and the end, ``eval_size`` questions);
- ``generation``: one greedy decoding of the held-out set.

A planned run is then priced at its step cap (runs that stop at their plateau cost less: the projection
is an upper bound, and the bank's finished runs give the real figure beside it):
``steps x train + steps / eval_every x curve + 2 x full + (1 + generate_initial) x generation + overhead``.
Chapter 01 trains nothing; its captures and fits are priced by its last execution's wall time.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from priorlib.compendium.performance import PHASES, costs_markdown, write_page
MEASURE_STEPS = 9      # the first (compiling) step plus 8 timed ones
MEASURE_EVAL_EVERY = 3  # periodic evaluations at steps 3 and 6


def kind(cfg) -> tuple:
    """What sets a run's price (two configs of one kind cost the same per step and per evaluation)."""
    # the trainer caches the layers below the lowest deep block (deep "cut", no token-level prompt); a block
    # on layer 0 leaves none below it to cache
    cached = (cfg.method.value == "deep" and not cfg.token_prompt and cfg.deep_mode == "cut"
              and all(int(k) != 0 for k in cfg.deep_layers))
    return (cfg.model, cfg.task, cfg.method.value, "cached" if cached else "full", cfg.max_length, cfg.batch_size,
            cfg.eval_size, cfg.plateau_eval_size, cfg.eval_generate, cfg.max_new_tokens)


def kind_label(k: tuple) -> str:
    model, task, method, cached, length, batch, n_eval, n_curve, gen, new = k
    deep = f" ({cached} lower layers)" if method == "deep" else ""
    return (f"{model} {task} {method}{deep}, batch {batch} x {length}, held-out {n_eval} (curve {n_curve})"
            + ("" if gen else ", no decoding"))


def _representative(cfg):
    from dataclasses import replace
    return replace(cfg, steps=MEASURE_STEPS, eval_every=MEASURE_EVAL_EVERY, checkpoint_every=MEASURE_STEPS,
                   stop_at_plateau=False, schedule="linear", warmup_steps=1, generate_initial=False)


def phases_of_run(folder: Path) -> dict:
    """The measured phases of one finished run folder: per-unit seconds and their counts."""
    from priorlib.checkpoint import read_jsonl
    hist = read_jsonl(Path(folder) / "history.jsonl")
    evals = read_jsonl(Path(folder) / "evals.jsonl")
    steps = [h["seconds"] for h in hist]
    curve = [e["seconds"] for e in evals if "val_loss" not in e and "seconds" in e]
    full = [e["seconds"] for e in evals if "val_loss" in e and "seconds" in e]
    gen = [e["generation_seconds"] for e in evals if "generation_seconds" in e]
    med = statistics.median(steps[1:]) if len(steps) > 1 else (steps[0] if steps else 0.0)
    return {"train": med, "curve": statistics.median(curve) if curve else 0.0,
            "full": statistics.mean(full) if full else 0.0, "generation": statistics.mean(gen) if gen else 0.0,
            "overhead": max(0.0, steps[0] - med) if steps else 0.0,
            "counts": {"steps": len(steps), "curve": len(curve), "full": len(full), "generation": len(gen)},
            "sums": {"train": sum(steps), "curve": sum(curve), "full": sum(full), "generation": sum(gen)},
            "total": sum(steps) + sum(curve) + sum(full) + sum(gen)}


def made_here(run_dir: Path) -> bool:
    """Whether the bank run in ``run_dir`` was trained on this kind of machine (its manifest names this CPU
    model and core count). Runs from before manifests named the CPU are not: one bank holds runs of several
    machines, and their seconds are not this machine's."""
    import os
    from priorlib.hardware import cpu_model
    machine = json.loads((Path(run_dir) / "manifest.json").read_text()).get("machine", {})
    return machine.get("cpu") == cpu_model() and machine.get("cpus") == os.cpu_count()


def bank_actuals(folder: Path) -> list[dict]:
    """What the bank's finished runs really took, per kind of run: runs, CPU-hours, and the share of their
    time spent evaluating and decoding (pooled over the kind's runs, and the smallest and largest of one
    run), read from each run's own logs; ``phase_share``: the pooled share of each phase (training steps,
    curve evaluations, full evaluations at step 0 and the last, decoding), from the logged seconds
    themselves. Only current runs count (stale ones were made by another engine)."""
    from priorlib import bank
    from priorlib.config import TrainConfig
    per: dict[str, list[dict]] = {}
    for e in bank.entries(folder):
        run_dir = Path(folder) / "runs" / e.key
        if e.stale or not (run_dir / "evals.jsonl").exists():
            continue
        cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"])
        ph = phases_of_run(run_dir)
        c = ph["counts"]
        ev = ph["curve"] * c["curve"] + ph["full"] * c["full"] + ph["generation"] * c["generation"]
        per.setdefault(kind_label(kind(cfg)), []).append({"total": ph["total"], "eval": ev, "steps": c["steps"],
                                                          "sums": ph["sums"]})
    out = []
    for label, rs in per.items():
        tot = sum(r["total"] for r in rs)
        shares = [r["eval"] / r["total"] for r in rs if r["total"] > 0]
        out.append({"kind": label, "runs": len(rs), "cpu_h": tot / 3600,
                    "eval_share": sum(r["eval"] for r in rs) / tot if tot else None,
                    "eval_share_min": min(shares) if shares else None, "eval_share_max": max(shares) if shares else None,
                    "median_steps": statistics.median(r["steps"] for r in rs),
                    "phase_share": {k: sum(r["sums"][k] for r in rs) / tot if tot else None
                                    for k in ("train", "curve", "full", "generation")}})
    return out


def measure(plans: dict, *, banks=(), progress: bool = True) -> dict:
    """``{kind label: phases}`` for every kind in ``plans`` (chapter -> configs): from a finished run of that
    kind in ``banks`` trained on this machine (:func:`made_here`) where there is one (a whole run, the best
    measurement), else from one short representative run trained here."""
    from tqdm.auto import tqdm
    from priorlib import bank, runstore
    kinds = {}
    for configs in plans.values():
        for c in configs:
            kinds.setdefault(kind(c), c)
    from priorlib.config import TrainConfig
    done = {}
    for folder in banks:
        for e in bank.entries(folder):
            run_dir = Path(folder) / "runs" / e.key
            if not e.stale and (run_dir / "evals.jsonl").exists() and made_here(run_dir):
                cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"])
                done.setdefault(kind(cfg), run_dir)
    out = {}
    with tempfile.TemporaryDirectory(prefix="priorlib-costs-") as root:
        for k, cfg in tqdm(list(kinds.items()), desc="measure kinds", disable=not progress):
            if k in done:
                out[kind_label(k)] = {**phases_of_run(done[k]), "source": f"bank run {done[k].name}"}
                continue
            t = time.perf_counter()
            run = runstore.train(_representative(cfg), root=root, progress=False)
            out[kind_label(k)] = {**phases_of_run(run.dir), "wall_s": time.perf_counter() - t,
                                  "source": f"{MEASURE_STEPS}-step probe"}
    return out


def price(cfg, unit: dict) -> dict:
    """CPU-seconds per phase of one planned run at its step cap, from its kind's measured ``unit``."""
    n_curve = max(0, (cfg.steps - 1) // cfg.eval_every)
    n_gen = (1 + int(cfg.generate_initial)) if cfg.eval_generate else 0
    return {"train": cfg.steps * unit["train"], "curve": n_curve * unit["curve"], "full": 2 * unit["full"],
            "generation": n_gen * unit["generation"], "overhead": unit["overhead"]}


def prices(configs, path: Path) -> list[float | None]:
    """Each config's CPU-seconds at its step cap, priced from the measurement in ``path`` (the committed
    ``benchmarks/costs.json``); ``None`` for a kind it has not measured, or for all of them where there is
    no measurement. The runner's progress bar adds these up for its ETA."""
    path = Path(path)
    units = json.loads(path.read_text()).get("units", {}) if path.exists() else {}
    out = []
    for c in configs:
        unit = units.get(kind_label(kind(c)))
        out.append(sum(price(c, unit).values()) if unit else None)
    return out


def hours_left(prices: list[float | None], finished: int, elapsed_s: float) -> float | None:
    """CPU-hours the jobs after the first ``finished`` of ``prices`` will take: each one's price at its step
    cap (a run that plateaus stops earlier, a loaded machine takes longer), and for a job the cost model
    cannot price, the mean wall time of the jobs finished so far (``elapsed_s`` over ``finished``).
    ``None`` when a job left has neither. The mean alone misleads: a resumed run finishes in minutes, and
    chapters differ tenfold."""
    left = prices[finished:]
    if any(p is None for p in left) and finished == 0:
        return None
    mean = elapsed_s / finished if finished else 0.0
    return sum(mean if p is None else p for p in left) / 3600


def project(plans: dict, units: dict, chapter01_s: float | None = None) -> list[dict]:
    """One row per chapter: CPU-hours per phase at the step caps, the share of evaluation plus decoding,
    and the runs planned."""
    rows, seen = [], set()
    for chapter, configs in plans.items():
        tot = dict.fromkeys(PHASES, 0.0)
        mine = [c for c in configs if c.key() not in seen]  # a run two chapters share is priced once, first
        seen.update(c.key() for c in mine)
        for c in mine:
            for ph, s in price(c, units[kind_label(kind(c))]).items():
                tot[ph] += s
        if chapter.startswith("01") and chapter01_s is not None:
            tot["overhead"] += chapter01_s
        total = sum(tot.values())
        rows.append({"chapter": chapter, "runs": len(mine), "shared": len(configs) - len(mine),
                     **{ph: tot[ph] / 3600 for ph in PHASES},
                     "cpu_h": total / 3600,
                     "eval_share": (tot["curve"] + tot["full"] + tot["generation"]) / total if total else None})
    return rows


def chapter01_seconds(book_dir: Path) -> float | None:
    """Chapter 01's last execution wall time (its captures, fits and projections), from the executed copy."""
    path = Path(book_dir) / "01_proof_of_concept.ipynb"
    if not path.exists():
        return None
    meta = json.loads(path.read_text()).get("metadata", {})
    return meta.get("priorlib", {}).get("run_manifest", {}).get("wall_time_s")


def with_deferred(plans: dict, profile: str) -> dict:
    """Chapter 08's posterior-arm targets cannot be planned before its sources train (their config names a
    bank of the trained prompts); price each as one more run of the target's config (same kind, same sizes)."""
    from dataclasses import replace
    stem = "08_posterior_transfer"
    if stem not in plans:
        return plans
    from priorlib.compendium import chapter
    from priorlib.compendium.setup import setup
    target = setup(stem, profile).target
    extra = [replace(target, seed=10_000 + i) for i, _ in enumerate(chapter(stem).deferred(profile))]
    return {**plans, stem: plans[stem] + extra}


def earlier_measurements(last: dict | None, profile: str, keep: int = 4) -> list[dict]:
    """The totals of the measurements before ``last`` and of ``last`` itself, of ``profile`` (newest last, at
    most ``keep``): a new machine's figures replace the table, not the record of what others measured."""
    if not last or last.get("profile") != profile:
        return []
    mine = {"date": last["date"], "machine": last["machine"],
            "cpu_h": sum(r["cpu_h"] for r in last.get("projection", ()))}
    return (list(last.get("earlier") or []) + [mine])[-keep:]


def run(args, plan_all) -> int:
    """``priorlib evidence costs``: ``plan_all(profile)`` gives the chapters' configs (``evidence.plan_all``,
    passed in: evidence imports this module). The profile defaults to the committed measurement's, so the
    table prints at once."""
    from priorlib.checkpoint import atomic_write_text
    from priorlib.compendium.manifest import hardware
    from priorlib.compendium.paths import repo_root
    root = repo_root(args.root)
    path = root / "benchmarks" / "costs.json"
    last = json.loads(path.read_text()) if path.exists() else None
    profile = args.profile or (last or {}).get("profile", "cpu")
    plans = with_deferred(plan_all(profile), profile)
    if args.measure:
        hw = hardware()
        units = measure(plans, banks=[] if getattr(args, "fresh", False) else [root / "evidence"])
        result = {"date": time.strftime("%Y-%m-%d %H:%M"), "profile": profile,
                  "measure_steps": MEASURE_STEPS, "measure_eval_every": MEASURE_EVAL_EVERY,
                  "machine": f"{hw['cpu']}, {hw['cores']} cores", "units": units,
                  "earlier": earlier_measurements(last, profile)}
    elif last is not None:
        result = last
        if result["profile"] != profile:
            raise ValueError(f"{path} measured the {result['profile']!r} profile; rerun with --measure")
        missing = {kind_label(kind(c)) for cs in plans.values() for c in cs} - set(result["units"])
        if missing:
            raise ValueError(f"{path} has no measurement of {sorted(missing)[0]!r}; rerun with --measure")
    else:
        raise ValueError(f"no measurement in {path}; run `priorlib evidence costs --measure` first")
    result["projection"] = project(plans, result["units"], chapter01_seconds(root / "book"))
    result["bank"] = bank_actuals(root / "evidence")  # read afresh every time: the bank grows
    atomic_write_text(path, json.dumps(result, indent=1))
    write_page(root)
    print(costs_markdown(result))
    return 0
