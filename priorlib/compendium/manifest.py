"""Run manifests for executed notebooks: what ran, with what, on what, for how long.

A manifest is a plain JSON-able dict. ``attach`` stores it in the notebook's metadata
(``metadata.priorlib.run_manifest``) and as a visible markdown footer cell (tagged
``priorlib-manifest``; an older footer is replaced, never duplicated).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata as _md
from pathlib import Path

from priorlib.hardware import cpu_model

PACKAGES = (
    "priorlib", "torch", "transformers", "peft", "numpy", "scikit-learn", "matplotlib",
    "seaborn", "ipywidgets", "papermill", "nbclient", "jupyter-book",
)
FOOTER_TAG = "priorlib-manifest"


def package_versions(names=PACKAGES) -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing is imported)."""
    out = {}
    for name in names:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(repo: str | os.PathLike) -> dict:
    """The commit checked out in ``repo`` and whether its sources had uncommitted changes. The book's own
    outputs (the executed ``book/NN_*.ipynb``, the generated ``book/claims.md``, ``book/key_findings.md`` and ``book/build.md``)
    do not count: a build rewrites them one chapter after another, and they are what the commit's sources
    produce."""
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":(exclude,glob)book/[0-9][0-9]_*.ipynb", ":(exclude)book/claims.md",
                    ":(exclude)book/key_findings.md", ":(exclude)book/build.md")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _gpu_names() -> list[str]:
    """GPU names from nvidia-smi, without importing torch (the runner stays light)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        res = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if res.returncode != 0:
        return []
    return [line.strip() for line in res.stdout.splitlines() if line.strip()]


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def hardware() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "gpu": _gpu_names() or None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def build_manifest(*, notebook: str, parameters: dict, profile: str | None, repo,
                   wall_time_s: float, started: _dt.datetime | None = None,
                   extra: dict | None = None) -> dict:
    manifest = {
        "notebook": notebook,
        "profile": profile,
        "parameters": parameters,
        "git": git_commit(repo),
        "packages": package_versions(),
        "hardware": hardware(),
        "wall_time_s": round(float(wall_time_s), 2),
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if started is not None:
        manifest["started"] = started.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")
    if extra:
        manifest.update(extra)
    return manifest


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def footer_markdown(manifest: dict) -> str:
    git = manifest.get("git") or {}
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += " (with uncommitted changes)"
    hw = manifest.get("hardware") or {}
    gpu = ", ".join(hw.get("gpu") or []) or "none"
    packages = ", ".join(f"{k} {v}" for k, v in (manifest.get("packages") or {}).items() if v)
    params = manifest.get("parameters") or {}
    rows = [
        ("notebook", manifest.get("notebook")),
        ("profile", manifest.get("profile") or "notebook default"),
        ("parameters", ", ".join(f"{k}={_cell(v)}" for k, v in params.items()) or "notebook defaults"),
        ("wall time", f"{manifest.get('wall_time_s', 0):.1f} s"),
        ("finished (UTC)", manifest.get("finished")),
        ("git commit", commit),
        ("hardware", f"{hw.get('cpu')}, {hw.get('cores')} cores, "
                     f"{hw.get('memory_gib')} GiB RAM, GPU: {gpu}"),
        ("packages", packages),
    ]
    lines = ["---", "", "**Run manifest** (written by `priorlib book`)", "",
             "| field | value |", "|---|---|"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in rows]
    return "\n".join(lines) + "\n"


def attach(nb, manifest: dict) -> None:
    """Store ``manifest`` in ``nb.metadata.priorlib.run_manifest`` and as the last cell."""
    import nbformat

    nb.metadata.setdefault("priorlib", {})["run_manifest"] = manifest
    nb.cells = [c for c in nb.cells if FOOTER_TAG not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_markdown_cell(footer_markdown(manifest))
    cell.metadata["tags"] = [FOOTER_TAG]
    cell.pop("id", None)
    if nb.get("nbformat_minor", 0) >= 5 or nb.get("nbformat", 4) > 4:
        cell["id"] = "priorlib-run-manifest"
    nb.cells.append(cell)
