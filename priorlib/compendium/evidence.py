"""``priorlib evidence``: the book's runs, computed once into the committed bank ``evidence/``.

    priorlib evidence plan                   # write the converged plans (no notebook executes)
    priorlib evidence status                 # per chapter: runs planned, in the bank, missing, stale; CPU time
    priorlib evidence run --only 02 03       # execute those chapters, training only what the bank lacks
    priorlib evidence costs --measure        # CPU-seconds per phase, and the bank's projected CPU-hours

Every chapter trains through :func:`priorlib.compendium.experiments.run_all`, which asks the bank first
(:func:`lookup`) and trains into the local run store only what the bank does not hold, so a reader who
reruns a notebook with a prior of their own trains just their new runs. Under ``priorlib evidence run``
(``PRIORLIB_EVIDENCE_EXPORT=1``) every run a chapter asks for is also written into the bank
(atomically, with the commit it was computed at) and the chapter's *plan*, the keys it asked for, is
saved as ``evidence/plans/<chapter>.json``; the status command compares plans with the bank. Killing
the command at any point loses at most the run in progress, which resumes from its last checkpoint.
:func:`plan_all` says, without executing a notebook, what each chapter will ask for (its ``plan(profile)``).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

from priorlib import bank
from priorlib.errors import NotInBank
from priorlib.compendium.paths import repo_root

EXPORT_ENV = "PRIORLIB_EVIDENCE_EXPORT"
BANK_ONLY_ENV = "PRIORLIB_BANK_ONLY"  # set by ``priorlib book --bank-only``: a run the bank lacks is an error
CHAPTER_ENV = "PRIORLIB_CHAPTER"  # set by the book's executor around each notebook
BUDGET_MB = 60


def evidence_dir(root=None) -> Path:
    """``<repo>/evidence``; ``$PRIORLIB_EVIDENCE`` moves it (tests, a second bank)."""
    env = os.environ.get("PRIORLIB_EVIDENCE")
    if env:
        return Path(env)
    try:
        return repo_root(root) / "evidence"
    except FileNotFoundError:
        return Path.cwd() / "evidence"


def exporting() -> bool:
    return os.environ.get(EXPORT_ENV, "") not in ("", "0")


def provenance(root=None) -> dict:
    from priorlib.compendium.manifest import git_commit
    try:
        return {"git": git_commit(repo_root(root))}
    except (FileNotFoundError, OSError):
        return {"git": None}


def bank_only() -> bool:
    return os.environ.get(BANK_ONLY_ENV, "") not in ("", "0")


def not_in_bank(configs, where: str = "") -> NotInBank:
    """The one-line error naming how many of ``configs`` the bank lacks, and the first."""
    configs = list(configs)
    first = configs[0]
    where = f"{where}: " if where else ""
    method = getattr(first.method, "value", first.method)
    return NotInBank(
        f"{where}{len(configs)} run(s) not in the evidence bank {evidence_dir()} (first: {first.key()}, "
        f"{first.task} {method} prior={first.prior} lr={first.lr} seed={first.seed}); "
        f"train them with `priorlib evidence run --missing-only`, or build without --bank-only")


def check_in_bank(configs, where: str = "") -> None:
    """Raise :class:`NotInBank` naming the first of ``configs`` the bank lacks (nothing is loaded or trained)."""
    absent = [cfg for cfg in configs if lookup(cfg) is None]
    if absent:
        raise not_in_bank(absent, where)


def lookup(config, banks=None):
    """The bank's run of ``config``, or ``None``."""
    return bank.find(config, [evidence_dir()] if banks is None else banks)


def deposit(run) -> None:
    """Export a finished run into the bank, when exporting."""
    if exporting():
        bank.export(run, evidence_dir(), provenance=provenance())


def record_plan(configs) -> Path | None:
    """Under ``evidence run``: save the keys the current chapter asked for (merged with earlier calls
    of the same execution, so a chapter that trains in several batches plans them all)."""
    chapter = os.environ.get(CHAPTER_ENV)
    if not (exporting() and chapter):
        return None
    path = evidence_dir() / "plans" / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    started = os.environ.get("PRIORLIB_EVIDENCE_STARTED", "")
    old = json.loads(path.read_text()) if path.exists() else {}
    keys = dict(old.get("runs", {})) if old.get("started") == started else {}
    keys.update(_plan_runs(configs))
    return _save_plan(path, chapter, started, keys)


def _plan_runs(configs) -> dict:
    """``{key: whole config}``, in asked order: a missing run can be trained without its notebook."""
    return {cfg.key(): cfg.to_dict() for cfg in configs}


def _save_plan(path: Path, chapter: str, started: str, runs: dict) -> Path:
    from priorlib.checkpoint import atomic_write_text
    atomic_write_text(path, json.dumps({"chapter": chapter, "started": started, "runs": runs}, indent=1))
    return path


def plan_all(profile: str = "cpu", only=None) -> dict:
    """``{chapter stem: [TrainConfig, ...]}``: what each chapter's notebook will ask ``run_all`` to train in
    ``profile``, in its order, from the chapter modules' ``plan(profile)`` (no notebook executes, no model
    loads, nothing trains). ``only``: these chapters (``02``, ``02_lr_priors`` or ``lr_priors``), as
    ``evidence run --only``; default: all, in book order. Chapter 08's plan leaves out the target runs of its
    posterior arms, whose configs name a bank of trained source prompts (see its ``plan``)."""
    from priorlib.compendium import chapter, chapter_names
    return {n: chapter(n).plan(profile) for n in choose_chapters(chapter_names(), only)}


def choose_chapters(names: list[str], only=None) -> list[str]:
    """The ``names`` (chapter stems, in order) that ``only`` picks: each of its entries as ``02``,
    ``02_lr_priors`` or ``lr_priors``; all of them when ``only`` is empty. An entry that names no chapter is
    an error."""
    if not only:
        return list(names)
    chosen = []
    for name in only:
        stem = Path(str(name)).name.removesuffix(".ipynb").removesuffix(".py").removesuffix(".json")
        matches = [n for n in names if stem in (n, n[:2], n[3:])]
        if not matches:
            raise ValueError(f"no chapter {name!r}; chapters: {', '.join(names)}")
        chosen += [n for n in matches if n not in chosen]
    return [n for n in names if n in chosen]


def write_plans(profile: str = "converged", only=None, root=None) -> list[Path]:
    """Save :func:`plan_all`'s configs as ``evidence/plans/<chapter>.json`` (what :func:`record_plan` writes
    when the notebooks execute), without executing a notebook: then :func:`status` counts the bank's
    progress and ``evidence run --missing-only`` trains what it lacks. Chapters that plan nothing get no
    file; a chapter's earlier plan is replaced."""
    folder = evidence_dir(root) / "plans"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for chapter, configs in plan_all(profile, only).items():
        if not configs:
            continue
        out.append(_save_plan(folder / f"{chapter}.json", chapter, f"plan:{profile}", _plan_runs(configs)))
    return out


def status(root=None) -> list[dict]:
    """Per chapter with a plan: runs planned, in the bank, missing; CPU seconds spent and (from the mean
    of its runs so far) the estimate left. A last row counts the bank's stale runs and its size."""
    folder = evidence_dir(root)
    present = {e.key: e for e in bank.entries(folder)}
    rows = []
    for plan in sorted((folder / "plans").glob("*.json")) if (folder / "plans").is_dir() else ():
        keys = json.loads(plan.read_text())["runs"]
        have = [present[k] for k in keys if k in present and not present[k].stale]
        spent = sum(e.train_seconds for e in have)
        missing = len(keys) - len(have)
        rows.append({"chapter": plan.stem, "planned": len(keys), "present": len(have), "missing": missing,
                     "not_plateaued": sum(e.plateaued is not True for e in have),
                     "cpu_h_spent": spent / 3600,
                     "cpu_h_left": (spent / len(have) * missing / 3600) if have else None})
    stale = [e for e in present.values() if e.stale]
    planned = {k for plan in (folder / "plans").glob("*.json") for k in json.loads(plan.read_text())["runs"]} \
        if (folder / "plans").is_dir() else set()
    rows.append({"chapter": "(bank)", "planned": len(planned), "present": len(present),
                 "stale": len(stale), "unplanned": len(set(present) - planned),
                 "megabytes": sum(e.bytes for e in present.values()) / 1e6, "budget_mb": BUDGET_MB})
    return rows


def missing(root=None, only=None) -> list:
    """The configs of every planned run the bank lacks (or holds only as stale), in plan order; ``only``:
    the plans of these chapters (as :func:`choose_chapters` reads them)."""
    from priorlib.config import TrainConfig
    folder = evidence_dir(root)
    present = {e.key for e in bank.entries(folder) if not e.stale}
    plans = {p.stem: p for p in sorted((folder / "plans").glob("*.json"))} if (folder / "plans").is_dir() else {}
    if only:
        from priorlib.compendium import chapter_names
        chosen = choose_chapters(chapter_names(), only)  # an unknown name fails here, before anything
        plans = {k: p for k, p in plans.items() if k in chosen}
    out, seen = [], set()
    for plan in plans.values():
        saved = json.loads(plan.read_text())
        for key, d in saved["runs"].items():
            if key not in present and key not in seen:
                cfg = _planned_config(TrainConfig, d, plan.stem, saved.get("started", ""))
                if cfg.key() != key:  # planned by another engine version: the chapter must plan it again
                    continue
                seen.add(key)
                out.append(cfg)
    return out


def _planned_config(cls, d: dict, chapter_name: str, started: str):
    """``cls.from_dict(d)``; a config whose prior names a derived artefact this machine's cache lacks (08's
    posterior bank, made from source runs in the evidence bank) has it remade by the chapter's own ``plan``
    (for a plan written by ``evidence plan``), then parses. The artefact is content-addressed, so a remade
    one has the same hash or the config's key no longer matches and the run is left for a new plan."""
    try:
        return cls.from_dict(d)
    except ValueError as err:
        if not started.startswith("plan:") or "no bank" not in str(err):
            raise
        from priorlib.compendium import chapter
        chapter(chapter_name).plan(started.removeprefix("plan:"))  # remakes the bank from the evidence
        return cls.from_dict(d)


def train_into_bank(config: dict, bank_dir: str, runs_root: str | None = None) -> str:
    """One job of :func:`compute`: train ``config`` (resuming it if a job before was killed) into the
    local run store and export it into the bank; returns the run's key. A plain function of plain values,
    so any executor can ship it."""
    from priorlib import runstore
    from priorlib.config import TrainConfig
    cfg = TrainConfig.from_dict(config)
    run = runstore.train(cfg, root=runs_root, progress=False)
    bank.export(run, bank_dir, provenance=provenance())
    return cfg.key()


def compute(configs, *, cluster: str = "local", folder=None, root=None, parallel: int | None = None,
            progress: bool = True, prices=None, **executor_params) -> list[str]:
    """Train ``configs`` into the bank through a `submitit` executor: ``cluster="local"`` runs each job as a
    local process (the default), ``"slurm"`` submits to Slurm (``executor_params`` such as
    ``slurm_partition=...``, ``timeout_min=...``), ``"debug"`` runs them in this process. ``parallel``: jobs
    in flight at once (default: 1 locally, where one run already uses every core; all of them on Slurm).
    Returns the keys, in order; a failed job raises its error. Job logs go to ``folder`` (default: the
    cache, never the repo). The bar's ETA is in CPU-hours (hours of this machine, as :func:`status` counts
    them): ``prices`` (CPU-seconds per config, :func:`priorlib.compendium.costs.prices`, default: from the
    committed cost measurement) summed over the jobs left, see :func:`~priorlib.compendium.costs.hours_left`."""
    import submitit
    from tqdm.auto import tqdm
    from priorlib.compendium.costs import hours_left, prices as price_configs
    from priorlib.models import cache_dir
    configs = list(configs)
    if prices is None:
        prices = price_configs(configs, repo_root(root) / "benchmarks" / "costs.json")
    prices = list(prices)
    if len(prices) != len(configs):
        raise ValueError(f"prices: {len(prices)} given for {len(configs)} configs")
    bank_dir = str(evidence_dir(root))
    folder = Path(folder) if folder is not None else cache_dir() / "submitit"
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    # a run to its plateau takes minutes to hours; submitit's default limit would kill it (a killed run resumes)
    executor.update_parameters(**{"timeout_min": 24 * 60, **executor_params})
    runs_root = os.environ.get("PRIORLIB_RUNS")
    width = parallel or (len(configs) if cluster == "slurm" else 1)
    keys: list[str] = []
    t0 = time.perf_counter()
    bar = tqdm(total=len(configs), desc="evidence runs", unit="run", disable=not progress)

    def eta():
        h = hours_left(prices, len(keys), time.perf_counter() - t0)
        if h is not None:
            bar.set_postfix(cpu_h_left=f"{h:.2f}")
    eta()
    jobs: list = []
    with _cancel_jobs_on_exit(lambda: jobs):
        for start in range(0, len(configs), width):
            jobs = [executor.submit(train_into_bank, c.to_dict(), bank_dir, runs_root)
                    for c in configs[start:start + width]]
            for job in jobs:
                keys.append(job.result())
                bar.update(1)
                eta()
    bar.close()
    return keys


@contextlib.contextmanager
def _cancel_jobs_on_exit(current):
    """Killing the runner (Ctrl-C or SIGTERM) cancels its jobs in flight instead of leaving them to train on
    unattended (a cancelled run resumes from its last checkpoint next time).

    submitit cancels a local job with SIGINT to its controller. A runner started in the background by a
    shell (``nohup priorlib evidence run ... &``) has SIGINT ignored, and a child inherits an ignored
    signal, so its controllers would ignore the cancel too: while jobs are submitted, SIGINT is handled."""
    import signal

    def term(signum, frame):
        raise KeyboardInterrupt
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, term) if main else None
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler) \
        if main and signal.getsignal(signal.SIGINT) == signal.SIG_IGN else None
    try:
        yield
    except BaseException:
        for job in current():
            if not job.done():
                job.cancel(check=False)
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
        if old_int is not None:
            signal.signal(signal.SIGINT, old_int)
