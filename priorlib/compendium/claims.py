"""The claims page: the paper's claims, one row each, with every chapter's result for it and one outcome.

from priorlib.compendium import claims
    chapters = claims.collect(Path("book"))          # the verdicts each executed notebook recorded
    text = claims.render(chapters, web="BBC News + Wikipedia sample")
    claims.key_findings(chapters)["counts"]          # {"agrees": 5, "contradicts": 3, "not tested yet": 9, ...}
    claims.write(Path("."))                          # -> book/claims.md and book/key_findings.md

Rows come from the registry (:data:`priorlib.compendium.paper.CLAIMS`): the first table holds the
paper's claims, the second this book's own hypotheses. Each chapter's
:class:`~priorlib.compendium.verdicts.Verdict` names its row by ``claim_id``; a row tested by several
chapters shows each chapter's result and combines their outcomes with
:func:`~priorlib.compendium.verdicts.combined` (agrees only if every chapter agrees; an undecided one
wins). A row no chapter tests says "not tested yet". Verdicts without a known claim id (results written
before the registry) are listed per chapter at the end, so old notebooks still render.
"""
from __future__ import annotations

import json
from pathlib import Path

from priorlib.compendium.provenance import chapter_title
from priorlib.compendium.paper import CLAIMS, REPLICATION, PaperClaim
from priorlib.compendium.verdicts import COLUMNS, Outcome, Verdict, combined, replicates

NOT_TESTED = "not tested yet"
PLUMBING = "plumbing only"
TABLE_HEAD = ["| § | claim (in our words) | measure | result | outcome |", "|---|---|---|---|---|"]

HEADER = """# The paper's claims, checked

One row per claim of the paper, stated in this book's words, with the one measure every chapter that
tests it uses, each chapter's result and the protocol's outcome (combined over chapters: *agrees* only
when every chapter agrees, and an undecided chapter decides the row). The page is generated from the
executed notebooks (`priorlib book` rebuilds it), so every number is the one printed in the chapter it
links to. Web text: {web}. Results from the `smoke` profile (a random miniature model) only check the
plumbing and are marked as such: they are not evidence. Each chapter's run manifest (its last cell)
names the model and profile behind its results; {methods} gives the decision rule of every row.
"""


def collect(book_dir: Path) -> list[dict]:
    """Per executed notebook: its stem, profile and :class:`Verdict` list (empty if it recorded none)."""
    chapters = []
    for path in sorted(Path(book_dir).glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        meta = nb.get("metadata", {}).get("priorlib", {})
        results = meta.get("results") or {}
        manifest = meta.get("run_manifest") or {}
        try:
            rows = [Verdict.from_dict(d) for d in results.get("verdicts", [])]
        except ValueError as err:
            raise ValueError(f"{path.name}: its recorded verdicts are not in the results.json schema ({err}); "
                             f"execute it again with `priorlib book --only {path.stem[:2]}`") from None
        chapters.append({"stem": path.stem, "profile": manifest.get("profile"), "rows": rows,
                         "title": chapter_title(path.stem, nb)})
    return chapters


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _link(ch: dict) -> str:
    return f"[{ch['stem'][:2]}]({ch['stem']}.ipynb)"


def _title(ch: dict) -> str:
    """The chapter's own title (``02 · Learning rate and prior ... (paper §4.2)``), linked to it."""
    title = ch.get("title") or chapter_title(ch["stem"], None)
    return f"[{title}]({ch['stem']}.ipynb)"


def _smoke(ch: dict) -> bool:
    return ch.get("profile") == "smoke"


def replication(ch: dict, v: Verdict) -> Verdict:
    """The :data:`~priorlib.compendium.paper.REPLICATION` verdict of one claim checked on several models:
    :func:`~priorlib.compendium.verdicts.replicates` of its per-model outcomes."""
    models = ", ".join(f"{m}: {o.value}" for m, o in v.by_model.items())
    return Verdict(f"{v.claim}: the same on every model", f"{v.claim} — {models}", replicates(v.by_model),
                   claim_id=REPLICATION)


def by_claim(chapters: list[dict]) -> tuple[dict[str, list[tuple[dict, Verdict]]], list[tuple[dict, Verdict]]]:
    """``(rows, loose)``: registry id -> ``[(chapter, verdict), ...]`` in chapter order (a verdict checked on
    several models also feeds the replication row), and the verdicts with no known claim id."""
    known = {c.id for c in CLAIMS}
    rows: dict[str, list] = {c.id: [] for c in CLAIMS}
    loose = []
    for ch in chapters:
        for v in ch["rows"]:
            if v.claim_id in known:
                rows[v.claim_id].append((ch, v))
                if len(v.by_model) >= 2:
                    rows[REPLICATION].append((ch, replication(ch, v)))
            else:
                loose.append((ch, v))
    return rows, loose


def row_outcome(entries: list[tuple[dict, Verdict]]) -> str:
    """The outcome a claim's row shows: "not tested yet" without verdicts; else :func:`combined` over the
    chapters' verdicts (smoke-profile ones count only when nothing else tests the claim, and then the
    row reads "… (plumbing only)")."""
    if not entries:
        return NOT_TESTED
    real = [v for ch, v in entries if not _smoke(ch)]
    use = real or [v for _, v in entries]
    outcome = combined({i: v.outcome for i, v in enumerate(use)}).value
    return outcome if real else f"{outcome} ({PLUMBING})"


def shown(v: Verdict) -> str:
    """A verdict's label where no "holds on" column gives it context: ``agrees on both models``,
    ``agrees on neither model``, ``agrees on Gemma-3-270M only``, or the outcome itself."""
    label = v.label
    if not v.by_model or label in {o.value for o in Outcome}:
        return label
    return {"both": "agrees on both models", "all": "agrees on every model", "neither": "agrees on neither model",
            "none": "agrees on no model"}.get(label, f"agrees on {label}")


def _result(entries: list[tuple[dict, Verdict]], mixed: bool = False) -> str:
    """The result cell: each chapter's measured value (and, where chapters ran at different profiles,
    ``mixed``, the profile behind it)."""
    parts = []
    for ch, v in entries:
        where = f" ({ch.get('profile')} profile)" if mixed and not _smoke(ch) else ""
        text = f"{_link(ch)}{where}: {_cell(v.measured)}"
        if v.outcome is Outcome.HOLDS_BY_CONSTRUCTION:
            text += " *(holds by construction: the setup guarantees it, so it is no evidence)*"
        if len(entries) > 1 or v.by_model:
            text += f" → {shown(v)}"
        if _smoke(ch):
            text += f" *(smoke profile: {PLUMBING}, not evidence)*"
        parts.append(text)
    return "<br>".join(parts) if parts else "—"


def _table(claims: list[PaperClaim], rows: dict, mixed: bool = False) -> list[str]:
    out = list(TABLE_HEAD)
    for c in claims:
        mark = " *(see the note below)*" if c.note else ""
        out.append(f"| {c.section} | {_cell(c.statement)}{mark} | {_cell(c.measure)} | {_result(rows[c.id], mixed)} | "
                   f"**{row_outcome(rows[c.id])}** |")
    notes = [f"- *{_cell(c.statement)}* {c.note}" for c in claims if c.note]
    return out + ([""] + notes if notes else []) + [""]


def render(chapters: list[dict], web: str) -> str:
    """The claims page (Markdown): the paper's claims, this book's hypotheses, then any untagged verdicts."""
    rows, loose = by_claim(chapters)
    profiles = {}
    for ch in chapters:
        if not _smoke(ch):  # smoke chapters are marked as plumbing on their own
            profiles.setdefault(ch.get("profile"), []).append(ch["stem"][:2])
    mixed = len(profiles) > 1
    out = [HEADER.format(web=web, methods="{doc}`methods`")]
    if mixed:
        out += [_mixed_note(profiles), ""]
    out += ["## The paper's claims", ""]
    out += _table([c for c in CLAIMS if c.kind == "paper"], rows, mixed)
    out += ["## This book's own hypotheses", "",
            "Questions the paper raised or left open, and variants of its methods, tested the same way.", ""]
    out += _table([c for c in CLAIMS if c.kind == "ours"], rows, mixed)
    silent = [ch for ch in chapters if not ch["rows"]]
    if silent:
        out += ["Chapters that have not recorded their verdicts yet (execute them with `priorlib book`): "
                + ", ".join(_title(ch) for ch in silent) + ".", ""]
    if loose:
        out += ["## Verdicts not yet tied to a claim", "",
                "Results recorded before the claim registry (or naming an unknown claim), in the wording and "
                "by the rules of the run that recorded them, which may predate corrections ({doc}`methods` has "
                "the current rules); executing the chapter again files them under their claim.", ""]
        for ch in chapters:
            mine = [v for c, v in loose if c is ch]
            if not mine:
                continue
            note = f" *(smoke profile: {PLUMBING}, not evidence)*" if _smoke(ch) else ""
            out += [f"### {_title(ch)}{note}", "", "| " + " | ".join(COLUMNS.values()) + " |", "|---|---|---|"]
            out += [f"| {_cell(v.claim)} | {_cell(v.measured)} | **{_cell(shown(v))}** |" for v in mine]
            out.append("")
    return "\n".join(out)


def _mixed_note(profiles: dict) -> str:
    """One line naming which chapters ran at which profile, when they differ (the book is between two
    executions: chapters whose converged runs are all in the evidence bank, the others still short runs)."""
    from priorlib.compendium import profiles as P
    parts = [f"**{p}**: {', '.join(stems)}" for p, stems in profiles.items()]
    steps = f" of {P.RUN['cpu'].steps} steps and {P.RUN['cpu'].eval_size} held-out questions" if "cpu" in profiles else ""
    return ("The chapters were executed at different profiles (" + "; ".join(parts) + "), and each result names "
            f"its own. The `converged` chapters take every run they compare from the evidence bank; `cpu` ones train short runs{steps}, "
            "so their quality verdicts say what those runs show, not what a converged run would.")


def key_findings(chapters: list[dict]) -> dict:
    """For the landing page: ``counts`` (row outcome -> number of the paper's claims) and ``chapters``, one
    entry per chapter with verdicts: its first verdict on a paper claim (else on one of ours), as
    ``{"stem", "claim", "kind", "outcome"}``; ``tagged`` is False when no verdict names a known claim."""
    rows, _ = by_claim(chapters)
    counts: dict[str, int] = {}
    for c in CLAIMS:
        if c.kind == "paper":
            o = row_outcome(rows[c.id])
            counts[o] = counts.get(o, 0) + 1
    registry = {c.id: c for c in CLAIMS}
    lines = []
    for ch in chapters:
        tagged = [v for v in ch["rows"] if v.claim_id in registry]
        first = next((v for v in tagged if registry[v.claim_id].kind == "paper"), tagged[0] if tagged else None)
        if first is not None:
            outcome = shown(first) + (f" ({PLUMBING})" if _smoke(ch) else "")
            lines.append({"stem": ch["stem"], "title": ch.get("title"), "claim": registry[first.claim_id].statement,
                          "kind": registry[first.claim_id].kind, "outcome": outcome, "profile": ch.get("profile")})
    return {"counts": counts, "chapters": lines, "tagged": bool(lines)}


def key_findings_markdown(chapters: list[dict]) -> str:
    """:func:`key_findings` as the Markdown snippet ``book/intro.md`` includes (``book/key_findings.md``)."""
    k = key_findings(chapters)
    if not k["tagged"]:
        return ("*The key findings appear here once the chapters have been executed with the claim registry "
                "(`priorlib book`); the {doc}`claims` page lists every claim.*\n")
    order = [o.value for o in Outcome] + [NOT_TESTED]
    counts = sorted(k["counts"].items(), key=lambda kv: order.index(kv[0].removesuffix(f" ({PLUMBING})")))
    out = [f"**The paper's {sum(k['counts'].values())} claims, as this book tested them** ({{doc}}`claims`): "
           + " · ".join(f"{o} {n}" for o, n in counts) + ".", ""]
    mixed = len({line["profile"] for line in k["chapters"] if line["profile"] != "smoke"}) > 1
    for line in k["chapters"]:
        ours = " *(our hypothesis)*" if line["kind"] == "ours" else ""
        where = f" *({line['profile']} profile)*" if mixed and line["profile"] != "smoke" else ""
        out.append(f"- {_title(line)}: {line['claim']}{ours} — **{line['outcome']}**{where}")
    return "\n".join(out) + "\n"


def write(root: Path) -> Path | None:
    """Regenerate ``book/claims.md`` and ``book/key_findings.md`` when any executed notebook carries verdicts."""
    chapters = collect(Path(root) / "book")
    if not any(ch["rows"] for ch in chapters):
        return None
    from priorlib.checkpoint import atomic_write_text
    from priorlib.data import web_source_name
    path = Path(root) / "book" / "claims.md"
    atomic_write_text(path, render(chapters, web_source_name()))
    atomic_write_text(path.with_name("key_findings.md"), key_findings_markdown(chapters))
    return path
