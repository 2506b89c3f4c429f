"""The claims page: every verdict of every executed notebook, in one table per chapter.

Each notebook writes ``results.json`` through :func:`priorlib.compendium.verdicts.write_results` (its
``verdicts``: claim, what we measured, outcome); ``priorlib book`` keeps it in the executed notebook's
metadata, and this module renders ``book/claims.md`` from those committed notebooks, so the page never
drifts from the numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

from priorlib.compendium.verdicts import COLUMNS, Verdict

HEADER = """# The paper's claims, checked

Every observation the paper makes, chapter by chapter, next to what this book measured and a
verdict. The table is generated from the executed notebooks (`priorlib book` rebuilds it), so every
number here is the one printed in the chapter it links to. Web text: {web}. Rows from the `smoke`
profile (a random miniature model) only check the plumbing and are marked as such: they are not
evidence. Each chapter's run manifest (its last cell) names the model and profile behind its rows.
"""


def collect(book_dir: Path) -> list[dict]:
    """Per executed notebook: its stem, profile and :class:`Verdict` list (empty if it recorded none)."""
    chapters = []
    for path in sorted(Path(book_dir).glob("[0-9][0-9]_*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {}).get("priorlib", {})
        results = meta.get("results") or {}
        manifest = meta.get("run_manifest") or {}
        try:
            rows = [Verdict.from_dict(d) for d in results.get("verdicts", [])]
        except ValueError as err:
            raise ValueError(f"{path.name}: its recorded verdicts are not in the results.json schema ({err}); "
                             f"execute it again with `priorlib book --only {path.stem[:2]}`") from None
        chapters.append({"stem": path.stem, "profile": manifest.get("profile"), "rows": rows})
    return chapters


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(chapters: list[dict], web: str) -> str:
    out = [HEADER.format(web=web)]
    for ch in chapters:
        num, _, name = ch["stem"].partition("_")
        title = f"{num} · {name.replace('_', ' ')}"
        note = "" if ch["profile"] != "smoke" else " *(smoke profile: plumbing only, not evidence)*"
        out += [f"## [{title}]({ch['stem']}.ipynb){note}", ""]
        if not ch["rows"]:
            out += ["This chapter has not recorded its verdicts yet (execute it with `priorlib book`).", ""]
            continue
        out += ["| " + " | ".join(COLUMNS.values()) + " |", "|---|---|---|"]
        out += [f"| {_cell(v.claim)} | {_cell(v.measured)} | **{_cell(v.label)}** |" for v in ch["rows"]]
        out.append("")
    return "\n".join(out)


def write(root: Path) -> Path | None:
    """Regenerate ``book/claims.md`` when any executed notebook carries verdicts."""
    chapters = collect(Path(root) / "book")
    if not any(ch["rows"] for ch in chapters):
        return None
    from priorlib.checkpoint import atomic_write_text
    from priorlib.data import web_source_name
    path = Path(root) / "book" / "claims.md"
    atomic_write_text(path, render(chapters, web_source_name()))
    return path
