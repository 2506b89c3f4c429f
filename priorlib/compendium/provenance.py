"""What produced each chapter of the book, read back from the executed notebooks.

Every executed ``book/NN_*.ipynb`` carries its run manifest (``metadata.priorlib.run_manifest``, see
:mod:`priorlib.compendium.manifest`). :func:`chapters` reads them (and each chapter's title);
:func:`odd_ones` names the chapters whose commit or tree state differs from the rest of the book;
:func:`build_page` renders ``book/build.md``, which :func:`write` keeps up to date (``priorlib book``
calls it before every build). The Sphinx extension :mod:`priorlib.compendium.sphinxext` puts a warning
on the page of every chapter :func:`odd_ones` names.

Chapter titles are normalised here too (:func:`chapter_title`): ``NN · Title``, with a paper section
number, where the source heading starts with one, moved to the end (``(paper §4.2)``).
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

CHAPTER_RE = re.compile(r"^(\d\d)_.+\.ipynb$")
BUILD_PAGE = "build.md"
_LEADING_NUMBER = re.compile(r"^\s*(?:(\d\d)\s*·\s*|§?(\d+(?:\.\d+)+)\s+)")


def normalise_title(stem: str, heading: str) -> str:
    """``"4.2 Learning rate"`` in ``02_lr_priors`` -> ``"02 · Learning rate (paper §4.2)"``;
    ``"05 · MATH ... (paper §4.5)"`` stays as it is."""
    heading = heading.strip()
    num = stem[:2]
    m = _LEADING_NUMBER.match(heading)
    section = None
    if m:
        section = m.group(2)
        heading = heading[m.end():].strip()
    if section and "§" not in heading:
        heading = f"{heading} (paper §{section})"
    return f"{num} · {heading}" if num.isdigit() else heading


def _first_heading(nb: dict) -> str | None:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        for line in src.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return None


def chapter_title(stem: str, nb: dict | None) -> str:
    """The chapter's heading, normalised (:func:`normalise_title`); its stem in words when it has none."""
    heading = _first_heading(nb or {})
    if heading is None:
        heading = stem[3:].replace("_", " ").capitalize()
    return normalise_title(stem, heading)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def chapters(book_dir) -> list[dict]:
    """One dict per executed chapter in ``book_dir``: stem, title, commit, dirty, profile, started,
    finished, wall_time_s (``None`` where the manifest lacks them)."""
    out = []
    for path in sorted(Path(book_dir).glob("*.ipynb")):
        if not CHAPTER_RE.match(path.name):
            continue
        nb = _read(path) or {}
        m = ((nb.get("metadata") or {}).get("priorlib") or {}).get("run_manifest") or {}
        git = m.get("git") or {}
        out.append({
            "stem": path.stem, "title": chapter_title(path.stem, nb),
            "commit": git.get("commit"), "dirty": git.get("dirty"), "profile": m.get("profile"),
            "started": m.get("started"), "finished": m.get("finished"), "wall_time_s": m.get("wall_time_s"),
        })
    return out


def _state(ch: dict) -> tuple:
    return ch.get("commit"), ch.get("dirty")


def odd_ones(rows: list[dict]) -> dict[str, str]:
    """``{stem: reason}`` for every chapter whose commit or tree state (clean/dirty) differs from the most
    common one in the book, or whose tree was dirty or unknown. Empty when all agree and are clean."""
    if not rows:
        return {}
    common, _ = Counter(_state(r) for r in rows).most_common(1)[0]
    out = {}
    for r in rows:
        reasons = []
        if r.get("commit") is None:
            reasons.append("its commit is not recorded")
        elif r["commit"] != common[0]:
            reasons.append(f"it was executed at commit {r['commit'][:10]}, the rest of the book at "
                           f"{(common[0] or 'an unknown commit')[:10]}")
        if r.get("dirty"):
            reasons.append("its working tree had uncommitted changes")
        elif r.get("dirty") is None and r.get("commit") is not None:
            reasons.append("its tree state is not recorded")
        elif r.get("dirty") != common[1] and common[1] is not None and r.get("commit") is not None:
            reasons.append("its tree state differs from the rest of the book")
        if reasons:
            out[r["stem"]] = "; ".join(reasons)
    return out


def warning_text(stem: str, reason: str) -> str:
    """The warning at the top of an odd chapter (the extension links its last words to the build page)."""
    return (f"This chapter does not match the rest of the book: {reason}. Its numbers may not be comparable "
            f"with the other chapters'; the build page lists what produced each chapter.")


def _date(iso: str | None) -> str:
    return (iso or "")[:16].replace("T", " ") + (" UTC" if iso else "—")


def build_page(rows: list[dict]) -> str:
    """``book/build.md``: one row per chapter (commit, tree, profile, date, run time) and the warnings."""
    odd = odd_ones(rows)
    lines = ["# Build", "",
             "What produced each chapter of this book, read from the run manifest its executed notebook carries "
             "(`metadata.priorlib.run_manifest`; the footer of each chapter shows all of it). "
             "`priorlib book` regenerates this page before every build.", ""]
    if not rows:
        return "\n".join(lines + ["No chapter has been executed yet.", ""])
    commits = {r["commit"] for r in rows}
    if not odd:
        lines += [f"All {len(rows)} chapters were executed at one commit, "
                  f"`{(next(iter(commits)) or '?')[:10]}`, from a clean tree.", ""]
    else:
        lines += [":::{warning}",
                  f"{len(odd)} of {len(rows)} chapters do not match the rest of the book: "
                  + "; ".join(f"**{s[:2]}**: {why}" for s, why in odd.items()) + ".", ":::", ""]
    lines += ["| chapter | commit | tree | profile | executed | run time |", "|---|---|---|---|---|---|"]
    for r in rows:
        tree = {True: "dirty", False: "clean", None: "unknown"}[r.get("dirty")]
        mark = " ⚠" if r["stem"] in odd else ""
        wall = f"{r['wall_time_s'] / 60:.1f} min" if isinstance(r.get("wall_time_s"), (int, float)) else "—"
        title = r["title"].replace("|", "\\|")
        lines.append(f"| [{title}]({r['stem']}.ipynb){mark} | `{(r['commit'] or '?')[:10]}` | {tree} | "
                     f"{r.get('profile') or '—'} | {_date(r.get('finished') or r.get('started'))} | {wall} |")
    return "\n".join(lines) + "\n"


def write(root) -> Path:
    """(Re)write ``book/build.md`` under ``root`` when its content changed; returns its path."""
    path = Path(root) / "book" / BUILD_PAGE
    text = build_page(chapters(Path(root) / "book"))
    if not path.is_file() or path.read_text() != text:
        from priorlib.checkpoint import atomic_write_text
        atomic_write_text(path, text)
    return path
