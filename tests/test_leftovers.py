"""No leftover output in the book: no progress-bar widget, no "cache store" line, no kernel TCP warning,
no library warning on stderr.

Two checks: every committed executed chapter (``book/NN_*.ipynb``), and a fixture notebook executed afresh
by the book's runner, which does everything that used to leave such output behind (a tqdm bar named
"Loading weights", a cache store). The first fails on chapters executed before the sources were fixed:
execute them again (``priorlib book --only NN``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from priorlib.compendium import book

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CHAPTERS = sorted((REPO / "book").glob("[0-9][0-9]_*.ipynb"))


def test_the_checker_finds_each_kind_of_leftover():
    nb = {"metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {
        "a": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_b"]}},
        "b": {"model_name": "FloatProgressModel", "state": {"value": 272}}}}}},
        "cells": [
            {"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {
                "application/vnd.jupyter.widget-view+json": {"model_id": "a"}, "text/plain": ["Loading weights"]}}]},
            {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr",
                                               "text": "cache store: x (abc)\n"}]},
            {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr",
                                               "text": ["WARNING: running over TCP without encryption"]}]},
            {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout", "text": "fine\n"}]},
            {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr", "text": [
                "Ignoring fixed y limits to fulfill fixed data aspect with adjustable data limits.\n"]}]},
            {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr", "text": "\n"}]},
        ]}
    found = book.leftovers(nb)
    assert len(found) == 4 and found[0].startswith("cell 0: a progress-bar widget")
    assert "cache store" in found[1] and "without encryption" in found[2]
    assert found[3] == "cell 4: text on stderr (Ignoring fixed y limits to fulfill fixed data aspect with ad)"


# The executed chapters committed before the kernel start-up fix (and its test) landed: their commit is
# recorded in each notebook; they are the ones re-executed next (issues 13 and 19). Any chapter executed
# later must be clean, and one of these re-executed with leftovers fails too (the xfail is strict).
EXECUTED_BEFORE_THE_FIX = {"e8341b4dbef547d9435ea2277c875f7653484ba7"}


def _commit(nb: dict):
    return ((nb.get("metadata", {}).get("priorlib", {}).get("run_manifest") or {}).get("git") or {}).get("commit")


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_committed_chapters_have_no_leftover_output(path, request):
    nb = json.loads(path.read_text())
    found = book.leftovers(nb)
    if found and _commit(nb) in EXECUTED_BEFORE_THE_FIX:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{path.name} was executed at {_commit(nb)[:7]}, "
                                              "before the fix; it is re-executed with the book"))
    assert not found, f"{path.name} (execute it again: priorlib book --only {path.stem[:2]}): " + "; ".join(found)


@pytest.mark.slow
def test_a_fresh_execution_leaves_no_leftover_output(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    src = tmp_path / "notebooks" / "02_leftovers.ipynb"
    src.parent.mkdir()
    src.write_text((FIXTURES / "02_leftovers.ipynb").read_text())
    dest = tmp_path / "book" / "02_leftovers.ipynb"
    book.execute_notebook(src, dest, {"profile": "smoke"}, root=tmp_path, log=lambda *a, **k: None,
                          progress=False)
    nb = json.loads(dest.read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert any("done" in "".join(o.get("text", "")) for o in outputs)  # the cell did run
    assert book.leftovers(nb) == []
    assert "TQDM_DISABLE" not in __import__("os").environ  # the runner's own environment is restored
