"""``priorlib sweep NOTEBOOK --grid grid.yaml``: one notebook over a grid of parameters.

The grid is a YAML mapping of parameter name -> list of values (a scalar is a one-value list);
every point of the cartesian product (in the file's key order) is executed with papermill into
``book/sweeps/<notebook-stem>/<slug>.ipynb`` (same runner, temp file + rename, manifest, hidden
parameter cells as ``priorlib book``), and ``book/sweeps/<notebook-stem>.md`` is rewritten to list
every executed point in that folder with its parameters. ``_toc.yml`` globs ``book/sweeps/**``, so
the next build shows the sweep with no hand editing.
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


def write_index(sweep_dir: Path, stem: str, index_path: Path) -> Path:
    """List every executed point under ``sweep_dir`` (read back from their manifests)."""
    import nbformat

    rows, keys = [], []
    for nb_path in sorted(sweep_dir.glob("*.ipynb")):
        if nb_path.name.startswith("."):
            continue
        nb = nbformat.read(nb_path, as_version=4)
        m = nb.metadata.get("priorlib", {}).get("run_manifest", {})
        point = nb.metadata.get("priorlib", {}).get("sweep_point", {})
        for key in point:
            if key not in keys:
                keys.append(key)
        rows.append((nb_path, point, m))
    lines = [
        f"# Sweep: `{stem}`",
        "",
        f"Executed copies of `notebooks/{stem}.ipynb`, one per point of a parameter grid, written by "
        "`priorlib sweep` (see {doc}`../reproduce`). Each page ends with its run manifest.",
        "",
    ]
    if not rows:
        lines.append("No point has been executed yet.")
    else:
        header = ["point", *keys, "profile", "wall time (s)", "finished (UTC)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for nb_path, point, m in rows:
            rel = f"{sweep_dir.name}/{nb_path.name}"
            cells = [f"[{nb_path.stem}]({rel})"]
            cells += [_format_value(point[k]) if k in point else "" for k in keys]
            cells += [str(m.get("profile") or ""), f"{m.get('wall_time_s', 0):.1f}",
                      str(m.get("finished") or "")]
            lines.append("| " + " | ".join(cells) + " |")
    index_path.parent.mkdir(parents=True, exist_ok=True)
    index_path.write_text("\n".join(lines) + "\n")
    return index_path


def resolve_notebook(root: Path, name: str) -> Path:
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    matches = _book.find_notebooks(root / "notebooks", [name])
    if len(matches) != 1:
        raise ValueError(f"{name}: matches {len(matches)} notebooks, name exactly one")
    return matches[0]


def run_sweep(src, grid: dict, *, root, book_dir=None, base_parameters=None, log=print) -> list[dict]:
    root = Path(root)
    src = Path(src)
    book_dir = Path(book_dir) if book_dir else root / "book"
    sweep_dir = book_dir / "sweeps" / src.stem
    index = book_dir / "sweeps" / f"{src.stem}.md"
    points = grid_points(grid)
    kernel = _book.ensure_kernel()
    manifests = []
    log(f"sweep {src.stem}: {len(points)} point(s) -> {_book._rel(sweep_dir, root)}/", flush=True)
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
            )
            log(f"[{i}/{len(points)}] {name}: {m['wall_time_s']:.1f} s", flush=True)
            manifests.append(m)
    finally:  # the index lists whatever has been executed, even after a failure
        if sweep_dir.is_dir():
            write_index(sweep_dir, src.stem, index)
    return manifests


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", help="notebooks/NN_name.ipynb, or a name such as 02 or lr_priors")
    parser.add_argument("--grid", required=True, help="YAML file: parameter -> list of values")
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
    run_sweep(src, grid, root=root, base_parameters=base)
    if not args.no_build:
        _book.ensure_assets(root)
        _book.build_book(root, clean=args.clean)
    print(f"done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0
