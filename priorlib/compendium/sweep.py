"""``priorlib sweep NOTEBOOK --grid grid.yaml``: one notebook over a grid of parameters.

The grid is a YAML mapping of parameter name -> list of values (a scalar is a one-value list);
every point of the cartesian product (in the file's key order) is executed with papermill into
``book/sweeps/<notebook-stem>/<slug>.ipynb`` (same runner, temp file + rename, manifest, hidden
parameter cells as ``priorlib book``), and ``book/sweeps/<notebook-stem>.md`` is rewritten to list
every executed point in that folder with its parameters and what it produced (runs, final validation
loss, F1 or accuracy, verdicts, the chapter's scalar numbers; smoke-profile points are marked as
plumbing only). ``_toc.yml`` globs ``book/sweeps/**``, so the next build shows the sweep with no hand
editing. The grid's names and values are checked against the notebook's parameters cell and the
chapters' parameter kinds (:func:`priorlib.compendium.setup.parse_parameter`) before anything runs.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path

from priorlib.compendium import book as _book

SLUG_MAX = 120

GRID_HELP = """\
The grid file is a YAML mapping: parameter name -> its values. A list gives one point per element, a
scalar is one value, and the sweep runs every combination (the cartesian product, in the file's key
order). Names are the notebook's papermill parameters (its `parameters` cell); `profile` may be one of
them. A list-valued parameter such as `priors` takes one element per point (a scalar is a one-element
list); to give a point a whole list, nest it.

  # grid.yaml: 3 x 2 = 6 points
  priors: [isotropic, xavier, fitted-gaussian]   # one prior per point
  learning_rates: [1.0e-3, 5.0e-3]
  seeds: [[0, 1, 2]]                             # one value: all three seeds in every point
  profile: smoke                                 # a scalar: one value

  priorlib sweep 02 --grid grid.yaml --no-build
  priorlib sweep notebooks/02_lr_priors.ipynb --grid grid.yaml -p steps 8

Every name and value is checked before anything runs (an unknown name, or a value of the wrong type:
one line). Outputs:

  book/sweeps/<stem>/<point>.ipynb   each executed point (its name: the point's parameters), with its
                                     run manifest and results.json in its metadata
  book/sweeps/<stem>.md              the sweep's page: one row per point with its parameters, profile,
                                     runs, final validation loss, F1 or accuracy, verdicts, wall time;
                                     then each point's verdicts and numbers; smoke points are marked
  _build/results/<stem>/             results.json and figures of the last point executed
  _build/failed/sweeps/<stem>/       the partial output of a point that failed
  _build/html/                       the book, rebuilt at the end (unless --no-build)

Training runs go to the run store as for `priorlib book`, so a point already computed is reused.
"""


def load_grid(path) -> dict[str, list]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file not found: {path}")
    try:
        grid = yaml.load(path.read_text(), Loader=_book._yaml_loader())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({_book._first_line(err)})") from None
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{path}: the grid must be a non-empty mapping of parameter -> list of values")
    out = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{path}: parameter name {key!r} is not a Python identifier")
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ValueError(f"{path}: parameter {key!r} has an empty list of values")
        out[key] = values
    return out


def check_grid(src, grid: dict, base_parameters: dict | None = None) -> None:
    """Refuse, in one line and before any point runs, a name the notebook does not take or a value that
    its chapter would refuse (:func:`priorlib.compendium.setup.parse_parameter`; profiles by name)."""
    import papermill as pm

    from priorlib.compendium.profiles import check_profile
    from priorlib.compendium.setup import PARAMETERS, parse_parameter

    src = Path(src)
    names = list(pm.inspect_notebook(str(src)))
    for where, params in (("the grid", {k: v for k, v in grid.items()}), ("-p", {k: [v] for k, v in (base_parameters or {}).items()})):
        for key, values in params.items():
            if names and key not in names:
                raise ValueError(f"{where}: {src.stem} has no parameter {key!r}; its parameters: {', '.join(names)}")
            for value in values:
                if key == "profile":
                    check_profile(value)
                elif key in PARAMETERS:
                    parse_parameter(key, value)


def grid_points(grid: dict[str, list]) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _slug_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(_slug_value(v) for v in value) or "none"
    text = value if isinstance(value, str) else json.dumps(value)
    return re.sub(r"[^A-Za-z0-9.+]+", "-", text).strip("-.") or "x"


def slug(point: dict) -> str:
    """``{"lr": 0.001, "seed": 0}`` -> ``lr-0.001_seed-0`` (safe as a file and Sphinx name)."""
    text = "_".join(f"{key}-{_slug_value(value)}" for key, value in point.items())
    if len(text) > SLUG_MAX:  # keep it readable and unique
        import hashlib

        digest = hashlib.sha1(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:10]
        text = text[: SLUG_MAX - 11].rstrip("_-.") + "_" + digest
    return text


def point_slugs(points: list[dict]) -> list[str]:
    """Slugs for all points; points whose slugs collide (``"a b"`` vs ``"a-b"``) get a hash."""
    import hashlib

    slugs = [slug(p) for p in points]
    plain = list(slugs)
    for i, (s, p) in enumerate(zip(plain, points)):
        if plain.count(s) > 1:
            digest = hashlib.sha1(json.dumps(p, sort_keys=True, default=str).encode()).hexdigest()[:8]
            slugs[i] = f"{s}_{digest}"
    return slugs


def _format_value(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|")


def _retitle(point: dict):
    """Append the point's parameters to the notebook's first heading (its title in the book)."""
    suffix = ", ".join(f"{k}={_format_value(v)}" for k, v in point.items())

    def transform(nb):
        for cell in nb.cells:
            if cell.get("cell_type") != "markdown":
                continue
            lines = cell.source.splitlines()
            for i, line in enumerate(lines):
                if re.match(r"^#\s+\S", line):
                    lines[i] = f"{line.rstrip()} ({suffix})"
                    cell.source = "\n".join(lines)
                    return
        import nbformat  # no heading at all: give the page one

        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# Sweep point ({suffix})"))

    return transform


SMOKE_NOTE = ("```{{warning}}\n{which} in the `smoke` profile: a random miniature model that checks the plumbing "
              "only. {its} numbers and verdicts are not evidence for or against the paper.\n```")


def _number(x) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return "" if x is None else _format_value(x)
    return "n/a" if x != x else f"{x:.4g}"  # NaN


def _spread(values) -> str:
    """``mean`` of one value, ``mean (min–max)`` of several; NaN and missing values left out."""
    xs = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    if not xs:
        return ""
    mean = sum(xs) / len(xs)
    return _number(mean) if len(xs) == 1 or min(xs) == max(xs) else f"{_number(mean)} ({_number(min(xs))}–{_number(max(xs))})"


def result_summary(results: dict) -> dict:
    """The result columns of one point, from the results.json its notebook wrote (empty when none):
    training runs, final validation loss and F1 (or accuracy) over them (mean, and range), and the count
    of verdicts per outcome."""
    if not results:
        return {}
    runs = results.get("runs") if isinstance(results.get("runs"), list) else []
    out = {"runs": str(len(runs) if runs else results.get("n_runs", "")),
           "final val loss": _spread(r.get("final_val_loss") for r in runs)}
    quality = "final_f1" if any("final_f1" in r for r in runs) else "final_accuracy"
    out["final F1 / accuracy"] = _spread(r.get(quality) for r in runs)
    counts: dict[str, int] = {}
    for v in results.get("verdicts") or []:
        counts[str(v.get("outcome"))] = counts.get(str(v.get("outcome")), 0) + 1
    out["verdicts"] = ", ".join(f"{n} {k}" for k, n in counts.items())
    return out


def _profile_of(m: dict, results: dict) -> str:
    return str(m.get("profile") or (results or {}).get("profile") or "")


def write_index(sweep_dir: Path, stem: str, index_path: Path) -> Path:
    """List every executed point under ``sweep_dir`` (read back from their manifests and the results
    attached to them): parameters, profile, result columns, wall time; then each point's verdicts and
    scalar numbers. A sweep with smoke-profile points says so at the top."""
    import nbformat

    rows, keys = [], []
    for nb_path in sorted(sweep_dir.glob("*.ipynb")):
        if nb_path.name.startswith("."):
            continue
        nb = nbformat.read(nb_path, as_version=4)
        meta = nb.metadata.get("priorlib", {})
        m, point, results = meta.get("run_manifest", {}), meta.get("sweep_point", {}), meta.get("results") or {}
        for key in point:
            if key not in keys:
                keys.append(key)
        rows.append((nb_path, point, m, results))
    smoke = [r for r in rows if _profile_of(r[2], r[3]) == "smoke"]
    lines = [f"# Sweep: `{stem}`" + (" (smoke profile: plumbing only)" if rows and len(smoke) == len(rows) else ""), ""]
    if smoke:
        lines += [SMOKE_NOTE.format(which="Every point ran" if len(smoke) == len(rows) else
                                    f"{len(smoke)} of {len(rows)} points ran",
                                    its="Their" if len(smoke) > 1 else "Its"), ""]
    lines += [
        f"Executed copies of `notebooks/{stem}.ipynb`, one per point of a parameter grid, written by "
        "`priorlib sweep` (see {doc}`../reproduce`). Each page ends with its run manifest.",
        "",
    ]
    if not rows:
        lines.append("No point has been executed yet.")
    else:
        summaries = [result_summary(r[3]) for r in rows]
        result_keys = [k for k in ("runs", "final val loss", "final F1 / accuracy", "verdicts")
                       if any(s.get(k) for s in summaries)]
        header = ["point", *keys, "profile", *result_keys, "wall time (s)", "finished (UTC)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for (nb_path, point, m, results), summary in zip(rows, summaries):
            rel = f"{sweep_dir.name}/{nb_path.name}"
            profile = _profile_of(m, results)
            cells = [f"[{nb_path.stem}]({rel})"]
            cells += [_format_value(point[k]) if k in point else "" for k in keys]
            cells += [profile + (" (plumbing only)" if profile == "smoke" else "")]
            cells += [summary.get(k, "") for k in result_keys]
            cells += [f"{m.get('wall_time_s', 0):.1f}", str(m.get("finished") or "")]
            lines.append("| " + " | ".join(cells) + " |")
        if any(len(s.get("runs", "")) for s in summaries) and "final val loss" in result_keys:
            lines += ["", "Final validation loss and F1 (accuracy on MATH) are the mean over the point's training "
                      "runs, with their range when they differ."]
        lines += _verdict_table(rows) + _numbers_table(rows)
    index_path.parent.mkdir(parents=True, exist_ok=True)
    index_path.write_text("\n".join(lines) + "\n")
    return index_path


def _verdict_table(rows) -> list[str]:
    claims: list[str] = []
    for *_, results in rows:
        for v in results.get("verdicts") or []:
            if v.get("claim") not in claims:
                claims.append(v.get("claim"))
    if not claims:
        return []
    lines = ["", "## Verdicts per point", "", "| point | " + " | ".join(f"V{i}" for i in range(1, len(claims) + 1)) + " |",
             "|" + "---|" * (len(claims) + 1)]
    for nb_path, _, _, results in rows:
        by_claim = {v.get("claim"): str(v.get("outcome")) for v in results.get("verdicts") or []}
        lines.append("| " + " | ".join([nb_path.stem, *(by_claim.get(c, "") for c in claims)]) + " |")
    lines += [""] + [f"- V{i}: {_format_value(c)}" for i, c in enumerate(claims, 1)]
    return lines


def _numbers_table(rows) -> list[str]:
    """The chapter's scalar ``numbers`` (results.json) per point; nested ones stay in each point's page."""
    names: list[str] = []
    for *_, results in rows:
        for k, v in (results.get("numbers") or {}).items():
            if (v is None or isinstance(v, (int, float))) and k not in names:
                names.append(k)
    if not names:
        return []
    lines = ["", "## Numbers per point", "", "| point | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|" + "---|" * (len(names) + 1)]
    for nb_path, _, _, results in rows:
        numbers = results.get("numbers") or {}
        lines.append("| " + " | ".join([nb_path.stem, *(_number(numbers.get(n)) if n in numbers else "" for n in names)]) + " |")
    return lines


def resolve_notebook(root: Path, name: str) -> Path:
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    matches = _book.find_notebooks(root / "notebooks", [name])
    if len(matches) != 1:
        raise ValueError(f"{name}: matches {len(matches)} notebooks, name exactly one")
    return matches[0]


def run_sweep(src, grid: dict, *, root, book_dir=None, base_parameters=None, log=print,
              progress: bool = True) -> list[dict]:
    root = Path(root)
    src = Path(src)
    book_dir = Path(book_dir) if book_dir else root / "book"
    sweep_dir = book_dir / "sweeps" / src.stem
    index = book_dir / "sweeps" / f"{src.stem}.md"
    check_grid(src, grid, base_parameters)
    points = grid_points(grid)
    kernel = _book.ensure_kernel()
    manifests = []
    log(f"sweep {src.stem}: {len(points)} point(s) -> {_book.portable(sweep_dir, root)}/", flush=True)
    try:
        for i, (point, name) in enumerate(zip(points, point_slugs(points)), 1):
            log(f"[{i}/{len(points)}] {name} ...", flush=True)
            params = {**(base_parameters or {}), **point}
            retitle = _retitle(point)

            def transform(nb, point=point, retitle=retitle):
                nb.metadata.setdefault("priorlib", {})["sweep_point"] = point
                retitle(nb)

            m = _book.execute_notebook(
                src, sweep_dir / f"{name}.ipynb", params, root=root, kernel_name=kernel, log=log,
                transform=transform, failed_dir=root / "_build" / "failed" / "sweeps" / src.stem,
                progress=progress,
            )
            log(f"[{i}/{len(points)}] {name}: {m['wall_time_s']:.1f} s", flush=True)
            manifests.append(m)
    finally:  # the index lists whatever has been executed, even after a failure
        if sweep_dir.is_dir():
            write_index(sweep_dir, src.stem, index)
    return manifests


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Execute one notebook once per point of a parameter grid, into book/sweeps/, and list\n"
                          "the points and their results on one page of the book.")
    parser.epilog, parser.formatter_class = GRID_HELP, argparse.RawDescriptionHelpFormatter
    parser.add_argument("notebook", help="notebooks/NN_name.ipynb, or a name such as 02 or lr_priors")
    parser.add_argument("--grid", required=True, metavar="GRID.yaml",
                        help="YAML mapping: parameter -> list of values, or one value (see below)")
    _book.add_common_arguments(parser)


def run(args) -> int:
    t0 = time.perf_counter()
    root = _book.repo_root(args.root)
    src = resolve_notebook(root, args.notebook)
    grid = load_grid(args.grid)
    base = _book.parameters_from_args(args.profile, args.parameters)
    clash = sorted(set(base) & set(grid) - {"profile"})
    if clash:
        raise ValueError(f"parameter(s) {', '.join(clash)} given both with -p and in the grid")
    run_sweep(src, grid, root=root, base_parameters=base, progress=not getattr(args, "no_progress", False))
    if not args.no_build:
        _book.ensure_assets(root)
        _book.build_book(root, clean=args.clean)
    print(f"done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0
