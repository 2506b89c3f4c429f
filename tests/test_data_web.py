"""Web text (C4 stand-in): determinism, chunk length, labels, sizes, local C4 files, errors."""
from __future__ import annotations

import gzip
import json

import pytest

from priorlib.data import load_web, web_corpus_stats, web_source_name
from priorlib.data import web as web_module


@pytest.fixture
def no_c4(tmp_path, monkeypatch):
    """Point PRIORLIB_DATA at an empty folder so 'auto' means the local stand-in."""
    monkeypatch.setenv("PRIORLIB_DATA", str(tmp_path))
    monkeypatch.setenv("PRIORLIB_OFFLINE", "1")
    return tmp_path


def test_deterministic_and_seed_dependent(no_c4):
    a = load_web(50, seed=0)
    assert load_web(50, seed=0) == a
    assert load_web(50, seed=1) != a
    assert load_web(20, seed=0) == a[:20]
    assert len(set(a)) == 50


def test_min_chars_and_cleaning(no_c4):
    for source in ("auto", "bbc", "wiki", "lee"):
        texts = load_web(200, source=source, seed=2, min_chars=300)
        assert len(texts) == 200
        assert all(isinstance(t, str) and len(t) >= 300 for t in texts)
        assert all(t == t.strip() and "\n\n\n" not in t and "  " not in t for t in texts)
    wiki = load_web(300, source="wiki", seed=0)
    assert not any(marker in t for t in wiki for marker in ("[[", "]]", "{{", "'''", "<ref"))


def test_auto_interleaves_bbc_and_wiki(no_c4):
    bbc = set(load_web(web_corpus_stats("bbc")["chunks"], source="bbc", seed=5))
    mixed = load_web(10, seed=5)
    assert [t in bbc for t in mixed] == [True, False] * 5


def test_source_names_mention_the_stand_in(no_c4):
    name = web_source_name()
    assert "BBC News" in name and "Wikipedia" in name and "stand-in for C4" in name
    assert "stand-in for C4" in web_source_name("lee")
    with pytest.raises(ValueError, match="unknown web source"):
        web_source_name("reddit")


def test_sizes_and_error_when_n_too_large(no_c4):
    stats = {s: web_corpus_stats(s) for s in ("bbc", "wiki", "lee", "auto")}
    assert stats["bbc"]["docs"] == 2225 and stats["lee"]["docs"] == 300
    assert stats["bbc"]["words"] > 800_000 and stats["wiki"]["words"] > 300_000
    assert stats["auto"]["chunks"] == stats["bbc"]["chunks"] + stats["wiki"]["chunks"]
    available = stats["lee"]["chunks"]
    assert len(load_web(available, source="lee")) == available
    with pytest.raises(ValueError, match=f"has only {available}"):
        load_web(available + 1, source="lee")
    with pytest.raises(ValueError, match="non-negative"):
        load_web(-1)


def test_c4_offline_without_files(no_c4):
    with pytest.raises(FileNotFoundError, match="offline"):
        load_web(3, source="c4")


def test_local_c4_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_OFFLINE", "1")
    folder = tmp_path / "c4"
    folder.mkdir()
    lines = [json.dumps({"text": f"Document {i}. " + "word " * 60 + "\nSecond line here.", "url": "u"}) for i in range(6)]
    (folder / "part-0.jsonl").write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    with gzip.open(folder / "part-1.json.gz", "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines[3:]) + "\n")
    assert web_source_name(data_dir=tmp_path).startswith("C4")
    texts = load_web(6, data_dir=tmp_path, seed=0)
    assert sorted(t.split(".")[0] for t in texts) == [f"Document {i}" for i in range(6)]
    assert all(t.endswith("\n\nSecond line here.") for t in texts)
    with pytest.raises(ValueError, match="has only 6"):
        load_web(7, data_dir=tmp_path)
    (folder / "part-2.jsonl").write_text('{"text": "ok"}\n{"txt": "no"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"part-2.jsonl: line 2: missing string field 'text'"):
        load_web(1, source="c4", data_dir=tmp_path)
    (folder / "part-2.jsonl").write_text('{"text": "ok"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"part-2.jsonl: line 1: malformed JSON"):
        load_web(1, source="c4", data_dir=tmp_path)


def test_wiki_cache_is_written_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path))
    web_module._wiki_documents.cache_clear()
    try:
        first = web_module._wiki_documents()
        files = list(tmp_path.glob("web-wiki-v*.json"))
        assert len(files) == 1
        web_module._wiki_documents.cache_clear()
        calls = []
        monkeypatch.setattr(web_module, "_parse_wiki", lambda path: calls.append(path) or [])
        assert web_module._wiki_documents() == first and calls == []
    finally:
        web_module._wiki_documents.cache_clear()
