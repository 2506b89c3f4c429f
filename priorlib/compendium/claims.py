"""The claims page: every verdict row of every executed notebook, in one table per chapter.

Each notebook writes ``results.json`` with a ``verdicts`` list (paper's observation, what we
measured, agrees?); ``priorlib book`` keeps it in the executed notebook's metadata, and this module
renders ``book/claims.md`` from those committed notebooks, so the page never drifts from the numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

HEADER = """# The paper's claims, checked

Every observation the paper makes, chapter by chapter, next to what this book measured and a
verdict. The table is generated from the executed notebooks (`priorlib book` rebuilds it), so every
number here is the one printed in the chapter it links to. Web text: {web}. Rows from the `smoke`
profile (a random miniature model) only check the plumbing and are marked as such: they are not
evidence. Each chapter's run manifest (its last cell) names the model and profile behind its rows.
"""

_OBS = ("paper's observation", "observation", "claim", "paper")
_MEAS = ("what we measured", "measured", "we measured")
_AGREE = ("agrees?", "agrees", "verdict")


def _pick(row: dict, names) -> str:
    for n in names:
        if n in row:
            return row[n]
    return ""


def normalise(row) -> tuple[str, str, str]:
    """A verdict row as ``(observation, measured, verdict)`` from a dict or a 3-sequence."""
    if isinstance(row, dict):
        obs, meas, agree = _pick(row, _OBS), _pick(row, _MEAS), _pick(row, _AGREE)
    else:
        obs, meas, agree = (list(row) + ["", "", ""])[:3]
    if isinstance(agree, bool) or agree is None:
        agree = {True: "yes", False: "no", None: "not tested"}[agree]
    return str(obs), str(meas), str(agree)


def collect(book_dir: Path) -> list[dict]:
    chapters = []
    for path in sorted(Path(book_dir).glob("[0-9][0-9]_*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {}).get("priorlib", {})
        results = meta.get("results") or {}
        manifest = meta.get("run_manifest") or {}
        chapters.append({"stem": path.stem, "profile": manifest.get("profile"),
                         "rows": [normalise(r) for r in results.get("verdicts", results.get("verdict", []))]})
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
        out += ["| paper's observation | what we measured | agrees? |", "|---|---|---|"]
        out += [f"| {_cell(o)} | {_cell(m)} | **{_cell(a)}** |" for o, m, a in ch["rows"]]
        out.append("")
    return "\n".join(out)


def write(root: Path) -> Path | None:
    """Regenerate ``book/claims.md`` when any executed notebook carries verdicts."""
    chapters = collect(Path(root) / "book")
    if not any(ch["rows"] for ch in chapters):
        return None
    from priorlib.data import web_source_name
    path = Path(root) / "book" / "claims.md"
    path.write_text(render(chapters, web_source_name()))
    return path
