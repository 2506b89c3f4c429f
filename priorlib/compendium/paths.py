"""Where the compendium reads and writes: the repository being built, and its results folders.

    root = repo_root()                      # the folder holding _config.yml and _toc.yml
    out = results_dir("02_lr_priors")       # <root>/_build/results/02_lr_priors

The repository is found from the working directory upwards (``priorlib book`` and papermill run the
notebooks with the repository as their working directory), then from this package's checkout. So a
copy of the repository with an editable install elsewhere writes into the copy.
"""
from __future__ import annotations

import os
from pathlib import Path


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``_config.yml`` and ``_toc.yml``, searched upwards from ``start`` (or the cwd)."""
    here = Path(start or os.getcwd()).resolve()
    checkout = Path(__file__).resolve().parents[2]
    for folder in (here, *here.parents, checkout):
        if (folder / "_config.yml").is_file() and (folder / "_toc.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _config.yml/_toc.yml in {here} or above: run from the repository")


def results_dir(stem: str, out_dir: str | os.PathLike | None = None) -> Path:
    """``out_dir`` when given, else ``<repo>/_build/results/<stem>`` (the folder ``priorlib book`` reads)."""
    if out_dir is not None:
        return Path(out_dir)
    try:
        root = repo_root()
    except FileNotFoundError:
        root = Path.cwd()
    return root / "_build" / "results" / stem


def portable(path, root: str | os.PathLike | None = None) -> str:
    """``path`` relative to ``root`` (default: the repository) when inside it, since an executed notebook
    must not record the machine it ran on; a path elsewhere, chosen by the user, as given."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve() if root else repo_root()))
    except (ValueError, FileNotFoundError):
        return str(path)
