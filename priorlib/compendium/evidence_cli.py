"""``priorlib evidence``: the command over the bank in :mod:`priorlib.compendium.evidence`.

    priorlib evidence plan                   # write the converged plans (no notebook executes)
    priorlib evidence status                 # per chapter: runs planned, in the bank, missing, stale; CPU time
    priorlib evidence run --only 02 03       # execute those chapters, training only what the bank lacks
    priorlib evidence run --missing-only     # train the planned runs the bank lacks, no notebook executes
    priorlib evidence run --missing-only --only 08   # ... of chapter 08's plan only
    priorlib evidence costs --measure        # CPU-seconds per phase, and the bank's projected CPU-hours

The bank itself (plans, lookup, export, status) knows nothing of notebooks; this module is where the
command meets the book's executor, so the two modules do not import each other.
"""
from __future__ import annotations

import os
import time

from priorlib.compendium.evidence import (EXPORT_ENV, compute, missing, plan_all, status, write_plans)
from priorlib.compendium.paths import repo_root


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    st = sub.add_parser("status", help="runs planned, present, missing and stale, per chapter")
    st.add_argument("--root", default=None)
    pl = sub.add_parser("plan", help="write every chapter's planned runs to evidence/plans/ without executing "
                        "notebooks (then status counts them and run --missing-only trains them)")
    pl.add_argument("--profile", default="converged", help="whose plans (default: converged, the bank's design)")
    pl.add_argument("--only", nargs="+", metavar="NAME", default=None, help="these chapters; default: all")
    pl.add_argument("--root", default=None)
    run = sub.add_parser("run", help="execute chapters, training only what the bank lacks, into the bank")
    run.add_argument("--only", nargs="+", metavar="NAME", default=None,
                     help="these chapters (01, 01_proof_of_concept or proof_of_concept); default: all. With "
                     "--missing-only: only their planned runs")
    run.add_argument("--profile", default="cpu", help="the notebooks' parameter profile (default: cpu)")
    run.add_argument("--root", default=None)
    run.add_argument("--missing-only", action="store_true",
                     help="train the planned runs the bank lacks through the executor, without executing notebooks")
    run.add_argument("--cluster", default="local", choices=("local", "slurm", "debug"),
                     help="submitit executor for --missing-only (default: local processes)")
    co = sub.add_parser("costs", help="CPU-seconds per phase per kind of run, and the bank's projected CPU-hours "
                        "(written to benchmarks/costs.json and the book's performance page)")
    co.add_argument("--measure", action="store_true",
                    help="train one short representative run per kind first (minutes); else reuse the last measurement")
    co.add_argument("--fresh", action="store_true",
                    help="with --measure: probe every kind here, even where the bank holds a run of it from this "
                    "machine (whose seconds may be a loaded machine's)")
    co.add_argument("--profile", default=None,
                    help="whose plans to price (default: the last measurement's, else cpu)")
    co.add_argument("--root", default=None)


def _table(rows: list[dict]) -> str:
    cols = [c for c in ("chapter", "planned", "present", "missing", "not_plateaued", "cpu_h_spent", "cpu_h_left")]
    lines = ["  ".join(f"{c:>13}" for c in cols)]
    for r in rows[:-1]:
        lines.append("  ".join(f"{_cell(r.get(c)):>13}" for c in cols))
    b = rows[-1]
    lines.append(f"bank: {b['present']} runs, {b['stale']} stale, {b['unplanned']} in no plan, "
                 f"{b['megabytes']:.1f} MB of {b['budget_mb']} MB")
    return "\n".join(lines)


def _cell(v) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def run(args) -> int:
    if args.action == "costs":
        from priorlib.compendium import costs
        return costs.run(args, plan_all)
    if args.action == "plan":
        for path in write_plans(args.profile, args.only, args.root):
            print(path)
        print(_table(status(args.root)))
        return 0
    if args.action == "status":
        print(_table(status(args.root)))
        return 0
    if args.missing_only:
        todo = missing(args.root, args.only)
        print(f"{len(todo)} planned run(s) missing from the bank", flush=True)
        compute(todo, cluster=args.cluster, root=args.root)
        print(_table(status(args.root)))
        return 0
    from priorlib.compendium.book import execute_all, find_notebooks, parameters_from_args
    root = repo_root(args.root)
    notebooks = find_notebooks(root / "notebooks", args.only)
    params = parameters_from_args(args.profile, [])
    os.environ[EXPORT_ENV] = "1"
    os.environ["PRIORLIB_EVIDENCE_STARTED"] = str(time.time())
    execute_all(notebooks, root / "book", params, root=root)
    print(_table(status(root)))
    return 0
