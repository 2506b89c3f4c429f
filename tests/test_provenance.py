"""The build page and the provenance warnings: what produced each chapter, read from its run manifest."""
from __future__ import annotations

import json

from priorlib.compendium import provenance as P


def _chapter(folder, stem, commit, dirty, heading=None, profile="cpu"):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": [f"# {heading}\n"]}] if heading else [],
          "metadata": {"priorlib": {"run_manifest": {"git": {"commit": commit, "dirty": dirty}, "profile": profile,
                                                     "started": "2026-01-02T03:04:05+00:00",
                                                     "finished": "2026-01-02T03:14:05+00:00", "wall_time_s": 600}}}}
    (folder / f"{stem}.ipynb").write_text(json.dumps(nb))


def test_titles_are_numbered_one_way():
    assert P.normalise_title("02_lr_priors", "4.2 Learning rate and prior") == "02 · Learning rate and prior (paper §4.2)"
    assert P.normalise_title("05_math", "05 · MATH activations (paper §4.5)") == "05 · MATH activations (paper §4.5)"
    assert P.normalise_title("07_reg", "Regularisation") == "07 · Regularisation"
    assert P.chapter_title("03_exclusion", None) == "03 · Exclusion"


def test_the_odd_chapter_is_named_and_the_page_lists_every_chapter(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    _chapter(book, "01_a", "a" * 40, False, "01 · First")
    _chapter(book, "02_b", "a" * 40, False, "4.2 Second")
    _chapter(book, "03_c", "b" * 40, False, "Third")
    _chapter(book, "04_d", "a" * 40, True, "Fourth")
    rows = P.chapters(book)
    assert [r["title"] for r in rows] == ["01 · First", "02 · Second (paper §4.2)", "03 · Third", "04 · Fourth"]
    odd = P.odd_ones(rows)
    assert set(odd) == {"03_c", "04_d"}
    assert "bbbbbbbbbb" in odd["03_c"] and "uncommitted changes" in odd["04_d"]
    path = P.write(tmp_path)
    text = path.read_text()
    assert path == book / "build.md" and text.startswith("# Build")
    assert ":::{warning}" in text and "**03**" in text and "**04**" in text
    assert "| [03 · Third](03_c.ipynb) ⚠ | `bbbbbbbbbb` | clean | cpu | 2026-01-02 03:14 UTC | 10.0 min |" in text
    assert "| dirty |" in text


def test_one_commit_clean_tree_no_warning(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    for i in range(3):
        _chapter(book, f"0{i + 1}_x", "c" * 40, False)
    rows = P.chapters(book)
    assert P.odd_ones(rows) == {}
    assert "All 3 chapters were executed at one commit, `cccccccccc`, from a clean tree." in P.build_page(rows)
