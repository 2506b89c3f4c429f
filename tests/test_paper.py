"""The registry of the paper's claims (priorlib.compendium.paper): its integrity, and that the chapters,
the decision rules and the registry name the same claims with the same measures."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from priorlib.compendium import margins as M
from priorlib.compendium import paper as P

CHAPTERS = Path(__file__).resolve().parents[1] / "priorlib" / "compendium" / "chapters"


def _ids_in_chapters() -> dict[str, set[str]]:
    """chapter number -> the claim ids its verdict constructions name (``claim_id="..."`` in its source)."""
    return {p.name[:2]: set(re.findall(r'claim_id="([^"]+)"', p.read_text())) for p in CHAPTERS.glob("[0-9][0-9]_*.py")}


def test_registry_entries_are_unique_and_complete():
    ids = [c.id for c in P.CLAIMS]
    assert len(ids) == len(set(ids))
    assert {c.kind for c in P.CLAIMS} == {"paper", "ours"}
    assert all(c.statement.endswith(".") and c.measure for c in P.CLAIMS)
    assert P.claim(P.REPLICATION).kind == "ours"
    with pytest.raises(KeyError, match="known"):
        P.claim("no-such-claim")
    with pytest.raises(ValueError, match="kind"):
        P.PaperClaim("x", "1", "s.", "m", "theirs")


def test_every_claim_id_a_chapter_uses_is_in_the_registry():
    used = _ids_in_chapters()
    known = {c.id for c in P.CLAIMS}
    for chapter, ids in used.items():
        assert ids or chapter == "09", f"chapter {chapter} tags none of its verdicts"  # 09 passes on 02's and 01's
        assert ids <= known, (chapter, ids - known)


def test_every_tested_claim_has_a_rule_with_the_registrys_measure():
    tested = {(ch, i) for ch, ids in _ids_in_chapters().items() for i in ids}
    ruled = {(r.chapter, r.claim_id) for r in M.RULES if r.claim_id}
    assert tested - {(ch, P.REPLICATION) for ch, _ in tested} <= ruled, tested - ruled
    for r in M.RULES:
        if r.claim_id:
            c = P.claim(r.claim_id)
            assert (r.claim, r.measure) == (c.statement, c.measure), r


def test_claims_the_brief_lists_are_registered_with_their_sections():
    sections = {c.id: c.section for c in P.CLAIMS}
    for cid, sec in (("answer-tokens-close", "4.1"), ("math-modules-apart", "4.1"), ("no-collapse", "4.2, 5"),
                     ("fit-misses-activations", "4.4"), ("squad-gaussian-same-quality", "4.4"),
                     ("math-sharpens-difference", "4.5"), ("squad-activations-concentrated", "4.6"),
                     ("no-prior-improves", "6"), ("variance-penalty-insufficient", "4.6"), ("cut-carry-same", "3.2")):
        assert sections[cid] == sec
    assert "lester2021prompt" in P.claim("quality-independent-of-prior").note
