"""SQuAD v1.1 reading comprehension, split by article.

Where the data comes from
-------------------------
Every ``*.json`` file in ``<data_dir>/squad/`` is read, where ``data_dir`` is found by the one
discovery rule of :func:`priorlib.data.data_dir`: the ``data_dir`` argument, else
``$PRIORLIB_DATA``, else ``../shared/data`` beside the repository. The files use the official
v1.1 schema::

    {"version": "1.1", "data": [{"title": ..., "paragraphs": [{"context": ...,
      "qas": [{"id": ..., "question": ..., "answers": [{"text": ..., "answer_start": ...}]}]}]}]}

Every record is validated and nothing is dropped silently: malformed JSON,
a ``version`` other than ``"1.1"`` (SQuAD 2.0's unanswerable questions would be mis-read),
a missing or mistyped field, a question without answers, an ``answer_start``
that does not point at the answer text in the context, a duplicate question
id, or an article title that occurs twice (in one file or in two) raise a
one-line ``ValueError`` naming the file and the record. A missing folder or a
folder without ``*.json`` files raises ``FileNotFoundError``.

With no data directory found, the loader falls back to the Hugging Face hub
(``datasets.load_dataset("rajpurkar/squad")``, both of its splits pooled and
re-split by article like the local files), but only when the hub answers
(:func:`priorlib.data.examples.hub_unreachable`: offline mode, or one connect
probe of about a second); otherwise it raises a one-line ``FileNotFoundError``
asking for ``PRIORLIB_DATA``. :func:`squad_source` makes the same decision
without reading anything, so a command can fail before it loads a model.

Splits
------
:func:`split_articles` splits by article title, never by question, so no
context is shared between train, validation and test. The titles are sorted,
shuffled with ``random.Random(seed)`` and cut into consecutive runs whose sizes
follow ``fractions`` (largest-remainder rounding, so sizes always add up).

Measured with the full 48-article SQuAD v1.1 dev set (two files in
``../shared/data/squad`` beside the repository), ``seed=0``, ``fractions=(0.8, 0.1, 0.1)``:

=========== ======== =========
split       articles questions
=========== ======== =========
train       38       8,309
validation  5        905
test        5        1,356
total       48       10,570
=========== ======== =========

Reading and validating both files takes about 0.2 s (cold); the parsed articles
are memoised per process (keyed by file path, size and modification time).

Examples
--------
``prompt = f"{context}\\nQuestion: {question}\\nAnswer:"``,
``target = f" {first answer}"``, ``answers`` = every gold text (duplicates
removed, order kept), ``keep_span`` = the first answer's character span in the
context (the context opens the prompt, so the span is valid in the prompt),
``cut_end`` = the context's length (training may cut the context, newlines
and all, never the question),
``meta = {"id": ..., "title": ...}``. Examples come in split order: articles in
their shuffled split order, questions in file order within an article.
"""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

from .examples import Example, data_dir as find_data_dir, data_dir_search, hub_unreachable, one_line

__all__ = ["load_squad", "squad_articles", "split_articles", "squad_source", "SPLITS"]

SPLITS = ("train", "validation", "test")
HUB_NAME = "rajpurkar/squad"

# Memo of parsed + validated articles: key = tuple of (path, size, mtime_ns).
_ARTICLE_CACHE: dict[tuple, tuple[list[dict], dict[str, str]]] = {}


# --------------------------------------------------------------------------- splits
SUPPORTED_VERSIONS = ("1.1",)  # the "version" field of the official v1.1 files


def _split_sizes(n: int, fractions) -> list[int]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3:
        raise ValueError(f"fractions must have 3 entries (train, validation, test), got {len(fractions)}")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    exact = [f * n for f in fractions]
    sizes = [int(x) for x in exact]
    leftover = n - sum(sizes)
    # Largest remainder first; ties go to the earlier split.
    order = sorted(range(3), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in order[:leftover]:
        sizes[i] += 1
    return sizes


def split_articles(titles: list[str], seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[str]]:
    """Deterministic split of article ``titles`` into train / validation / test.

    The result does not depend on the order of ``titles``; every title lands
    in exactly one split. Duplicate titles raise ``ValueError``.
    """
    titles = list(titles)
    seen: set[str] = set()
    for t in titles:
        if t in seen:
            raise ValueError(f"split_articles: duplicate article title {t!r}")
        seen.add(t)
    sizes = _split_sizes(len(titles), fractions)
    order = sorted(titles)
    random.Random(seed).shuffle(order)
    out, start = {}, 0
    for name, size in zip(SPLITS, sizes):
        out[name] = order[start:start + size]
        start += size
    return out


# --------------------------------------------------------------------------- validation
def _snippet(text: str, limit: int = 40) -> str:
    text = one_line(text)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _fail(source: str, where: str, what: str):
    raise ValueError(one_line(f"{source}: {where}: {what}"))


def _need(obj, key, kind, source, where):
    if not isinstance(obj, dict):
        _fail(source, where, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        _fail(source, where, f"missing field {key!r}")
    value = obj[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        _fail(source, where, f"field {key!r} must be {names}, got {type(value).__name__}")
    return value


def _validate_articles(data, source: str, seen_ids: dict[str, str], seen_titles: dict[str, str]) -> list[dict]:
    """Validate the ``data`` list of one file; returns clean copies of its articles.

    ``seen_ids`` / ``seen_titles`` map ids and titles to the file they came
    from, so duplicates across files are caught too.
    """
    if not isinstance(data, list):
        _fail(source, "top level", f"field 'data' must be a list, got {type(data).__name__}")
    articles = []
    for a_index, article in enumerate(data):
        where = f"article #{a_index}"
        title = _need(article, "title", str, source, where)
        where = f"article {title!r}"
        if title in seen_titles:
            other = seen_titles[title]
            if other == source:
                _fail(source, where, "article title occurs twice in this file")
            _fail(source, where, f"article also appears in {other}")
        seen_titles[title] = source
        paragraphs = _need(article, "paragraphs", list, source, where)
        clean_paragraphs = []
        for p_index, paragraph in enumerate(paragraphs):
            p_where = f"{where}, paragraph #{p_index}"
            context = _need(paragraph, "context", str, source, p_where)
            qas = _need(paragraph, "qas", list, source, p_where)
            clean_qas = []
            for q_index, qa in enumerate(qas):
                q_where = f"{p_where}, question #{q_index}"
                qid = _need(qa, "id", str, source, q_where)
                q_where = f"{where}, question {qid!r}"
                if qid in seen_ids:
                    other = seen_ids[qid]
                    _fail(source, q_where, "duplicate question id" + ("" if other == source else f" (also in {other})"))
                seen_ids[qid] = source
                question = _need(qa, "question", str, source, q_where)
                answers = _need(qa, "answers", list, source, q_where)
                if not answers:
                    _fail(source, q_where, "no answers (SQuAD v1.1 needs at least one)")
                clean_answers = []
                for k, ans in enumerate(answers):
                    a_where = f"{q_where}, answer #{k}"
                    text = _need(ans, "text", str, source, a_where)
                    start = _need(ans, "answer_start", int, source, a_where)
                    if not text:
                        _fail(source, a_where, "empty answer text")
                    found = context[start:start + len(text)] if start >= 0 else ""
                    if found != text:
                        _fail(
                            source,
                            a_where,
                            f"answer_start {start} does not match the context "
                            f"(expected {_snippet(text)}, found {_snippet(found)})",
                        )
                    clean_answers.append({"text": text, "answer_start": start})
                clean_qas.append({"id": qid, "question": question, "answers": clean_answers})
            clean_paragraphs.append({"context": context, "qas": clean_qas})
        articles.append({"title": title, "paragraphs": clean_paragraphs})
    return articles


def _read_json(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(one_line(f"{path}: not valid UTF-8 at byte {exc.start}")) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            one_line(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        ) from None


def _load_local(folder: Path) -> list[dict]:
    if not folder.is_dir():
        raise FileNotFoundError(one_line(f"SQuAD folder {folder} does not exist (expected <data_dir>/squad/*.json)"))
    files = sorted(p for p in folder.glob("*.json") if p.is_file())
    if not files:
        raise FileNotFoundError(one_line(f"no *.json files in SQuAD folder {folder}"))
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    cached = _ARTICLE_CACHE.get(key)
    if cached is not None:
        return cached
    seen_ids: dict[str, str] = {}
    seen_titles: dict[str, str] = {}
    articles: list[dict] = []
    for path in files:
        payload = _read_json(path)
        if not isinstance(payload, dict):
            _fail(str(path), "top level", f"expected an object with a 'data' list, got {type(payload).__name__}")
        if "data" not in payload:
            _fail(str(path), "top level", "missing field 'data'")
        version = payload.get("version")
        if version not in SUPPORTED_VERSIONS:  # v2.0 adds unanswerable questions this loader would mis-read
            _fail(str(path), "top level", f"field 'version' must be {' or '.join(map(repr, SUPPORTED_VERSIONS))} "
                  f"(SQuAD v1.1), got {version!r}")
        articles.extend(_validate_articles(payload["data"], str(path), seen_ids, seen_titles))
    if not articles:
        raise ValueError(one_line(f"{folder}: the SQuAD files hold no articles"))
    _ARTICLE_CACHE.clear()  # keep one data set in memory, not one per edit
    _ARTICLE_CACHE[key] = articles
    return articles


def _load_hub() -> list[dict]:  # pragma: no cover - needs a network
    """Pool the hub's train and validation splits into v1.1-style articles."""
    try:
        import datasets
    except ImportError:
        raise FileNotFoundError(
            "no SQuAD data directory and the `datasets` package is missing: set PRIORLIB_DATA to a folder holding squad/*.json"
        ) from None
    try:
        hub = datasets.load_dataset(HUB_NAME)
    except Exception as exc:  # network or hub errors: keep them to one line
        raise FileNotFoundError(
            one_line(f"could not load {HUB_NAME} from the hub ({type(exc).__name__}: {exc}); set PRIORLIB_DATA to a folder holding squad/*.json")
        ) from None
    data: list[dict] = []
    by_title: dict[str, dict] = {}
    for split_name in hub:
        for row in hub[split_name]:
            title = row["title"]
            article = by_title.get(title)
            if article is None:
                article = {"title": title, "paragraphs": [], "_split": split_name}
                by_title[title] = article
                data.append(article)
            elif article["_split"] != split_name:
                raise ValueError(one_line(f"{HUB_NAME}: article {title!r} appears in both {article['_split']} and {split_name}"))
            paragraphs = article["paragraphs"]
            if not paragraphs or paragraphs[-1]["context"] != row["context"]:
                paragraphs.append({"context": row["context"], "qas": []})
            answers = [
                {"text": t, "answer_start": int(s)}
                for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"])
            ]
            paragraphs[-1]["qas"].append({"id": row["id"], "question": row["question"], "answers": answers})
    for article in data:
        del article["_split"]
    return _validate_articles(data, f"hub:{HUB_NAME}", {}, {})


def _no_data_message(reason: str) -> str:
    return one_line(f"no SQuAD data: {data_dir_search()}, and the hub cannot be used ({reason}); "
                    f"set PRIORLIB_DATA (or pass data_dir) to a folder holding squad/*.json")


def squad_source(data_dir=None) -> str:
    """Where :func:`load_squad` would read from, decided without reading: the local ``squad`` folder
    (checked to exist and hold ``*.json``) or ``"hub:rajpurkar/squad"`` when no data directory is found
    and the hub answers. Raises the loader's one-line ``FileNotFoundError`` otherwise."""
    root = find_data_dir(data_dir)
    if root is not None:
        folder = root / "squad"
        if not folder.is_dir():
            raise FileNotFoundError(one_line(f"SQuAD folder {folder} does not exist (expected <data_dir>/squad/*.json)"))
        if not any(p.is_file() for p in folder.glob("*.json")):
            raise FileNotFoundError(one_line(f"no *.json files in SQuAD folder {folder}"))
        return str(folder)
    if ("hub", HUB_NAME) not in _ARTICLE_CACHE:
        reason = hub_unreachable()
        if reason is not None:
            raise FileNotFoundError(_no_data_message(reason))
    return f"hub:{HUB_NAME}"


def _articles(data_dir) -> list[dict]:
    root = find_data_dir(data_dir)
    if root is not None:
        return _load_local(root / "squad")
    key = ("hub", HUB_NAME)
    if key not in _ARTICLE_CACHE:
        reason = hub_unreachable()
        if reason is not None:
            raise FileNotFoundError(_no_data_message(reason))
        _ARTICLE_CACHE[key] = _load_hub()  # pragma: no cover - needs a network
    return _ARTICLE_CACHE[key]


# --------------------------------------------------------------------------- public API
def squad_articles(data_dir=None) -> list[dict]:
    """The validated raw articles, ``[{"title", "paragraphs": [{"context", "qas": [...]}]}]``.

    Files are read in name order and articles kept in file order. The result
    is a fresh copy: callers may modify it.
    """
    return copy.deepcopy(_articles(data_dir))


def load_squad(
    split: str = "train",
    *,
    data_dir=None,
    seed: int = 0,
    fractions=(0.8, 0.1, 0.1),
    limit: int | None = None,
) -> list[Example]:
    """SQuAD examples of one split (``"train"``, ``"validation"`` or ``"test"``).

    The split is by article (see :func:`split_articles`). ``limit`` keeps the
    first ``limit`` examples of the split; a split with no questions raises
    ``ValueError``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown SQuAD split {split!r}; choose one of {', '.join(SPLITS)}")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    articles = _articles(data_dir)
    by_title = {a["title"]: a for a in articles}
    chosen = split_articles(list(by_title), seed, fractions)[split]
    examples: list[Example] = []
    for title in chosen:
        for paragraph in by_title[title]["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                first = qa["answers"][0]
                golds = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                start = first["answer_start"]
                examples.append(
                    Example(
                        prompt=f"{context}\nQuestion: {qa['question']}\nAnswer:",
                        target=f" {first['text']}",
                        answers=golds,
                        keep_span=(start, start + len(first["text"])),
                        cut_end=len(context),
                        meta={"id": qa["id"], "title": title},
                    )
                )
    if not examples:
        raise ValueError(
            one_line(
                f"SQuAD split {split!r} is empty ({len(chosen)} of {len(articles)} articles, "
                f"fractions={tuple(fractions)}, seed={seed})"
            )
        )
    if limit is not None:
        examples = examples[:limit]
    return examples
