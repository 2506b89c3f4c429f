"""SQuAD loader: validation errors, by-article splits, and the real dev set when present."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from priorlib.data import Example, data_dir, load_squad, split_articles, squad_articles

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _article(title: str, n_paragraphs: int = 1, questions: int = 2) -> dict:
    paragraphs = []
    for p in range(n_paragraphs):
        context = f"{title} paragraph {p} says the capital is Paris and the river is Seine."
        qas = []
        for q in range(questions):
            qas.append(
                {
                    "id": f"{title}-{p}-{q}",
                    "question": f"What is the capital ({q})?",
                    "answers": [
                        {"text": "Paris", "answer_start": context.index("Paris")},
                        {"text": "Paris", "answer_start": context.index("Paris")},
                        {"text": "the capital is Paris", "answer_start": context.index("the capital")},
                    ],
                }
            )
        paragraphs.append({"context": context, "qas": qas})
    return {"title": title, "paragraphs": paragraphs}


def _write(root: Path, name: str, articles_or_text) -> Path:
    folder = root / "squad"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(articles_or_text, str):
        path.write_text(articles_or_text, encoding="utf-8")
    else:
        path.write_text(json.dumps({"version": "1.1", "data": articles_or_text}, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """20 articles over two files, 2 paragraphs x 2 questions each (80 questions)."""
    _write(tmp_path, "a.json", [_article(f"A{i:02d}", 2, 2) for i in range(10)])
    _write(tmp_path, "b.json", [_article(f"B{i:02d}", 2, 2) for i in range(10)])
    return tmp_path


# --------------------------------------------------------------------------- valid data
def test_example_fields(tiny):
    ex = load_squad("train", data_dir=tiny)
    assert all(isinstance(e, Example) for e in ex)
    e = ex[0]
    context = e.prompt.split("\nQuestion: ")[0]
    assert e.prompt == f"{context}\nQuestion: What is the capital (0)?\nAnswer:"
    assert e.target == " Paris"
    assert e.answers == ("Paris", "the capital is Paris")  # deduplicated, order kept
    assert e.prompt[e.keep_span[0]:e.keep_span[1]] == "Paris"
    assert e.keep_span[1] <= len(context)
    assert set(e.meta) == {"id", "title"} and e.meta["id"].startswith(e.meta["title"])


def test_splits_cover_everything_disjoint_and_deterministic(tiny):
    parts = {s: load_squad(s, data_dir=tiny, seed=3) for s in ("train", "validation", "test")}
    titles = {s: {e.meta["title"] for e in ex} for s, ex in parts.items()}
    assert [len(titles[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    assert not (titles["train"] & titles["validation"]) and not (titles["train"] & titles["test"])
    assert not (titles["validation"] & titles["test"])
    assert set().union(*titles.values()) == {f"{c}{i:02d}" for c in "AB" for i in range(10)}
    assert sum(len(v) for v in parts.values()) == 80
    ids = [e.meta["id"] for v in parts.values() for e in v]
    assert len(ids) == len(set(ids)) == 80
    assert load_squad("test", data_dir=tiny, seed=3) == parts["test"]
    assert {e.meta["title"] for e in load_squad("test", data_dir=tiny, seed=4)} != titles["test"] or \
        {e.meta["title"] for e in load_squad("validation", data_dir=tiny, seed=4)} != titles["validation"]


def test_limit_and_env_var(tiny, monkeypatch):
    monkeypatch.setenv("PRIORLIB_DATA", str(tiny))
    assert data_dir() == tiny
    assert len(load_squad("train", limit=5)) == 5
    assert load_squad("train", limit=5) == load_squad("train", data_dir=tiny)[:5]


def test_squad_articles_returns_a_copy(tiny):
    articles = squad_articles(tiny)
    assert [a["title"] for a in articles][:3] == ["A00", "A01", "A02"]
    assert len(articles) == 20
    articles[0]["title"] = "changed"
    assert squad_articles(tiny)[0]["title"] == "A00"


def test_split_articles_properties():
    titles = [f"t{i}" for i in range(48)]
    s0 = split_articles(titles, 0, (0.8, 0.1, 0.1))
    assert [len(s0[k]) for k in ("train", "validation", "test")] == [38, 5, 5]
    assert sorted(sum(s0.values(), [])) == sorted(titles)
    assert split_articles(list(reversed(titles)), 0, (0.8, 0.1, 0.1)) == s0  # input order is irrelevant
    assert split_articles(titles, 1, (0.8, 0.1, 0.1)) != s0
    assert [len(v) for v in split_articles(titles[:7], 0, (0.5, 0.25, 0.25)).values()] == [3, 2, 2]  # largest remainder
    with pytest.raises(ValueError, match="sum to 1"):
        split_articles(titles, 0, (0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="duplicate article title 't1'"):
        split_articles(titles + ["t1"], 0, (0.8, 0.1, 0.1))


# --------------------------------------------------------------------------- errors
def _error(exc_type, root: Path) -> str:
    with pytest.raises(exc_type) as info:
        load_squad("train", data_dir=root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_malformed_json_names_file_line_and_column(tmp_path):
    _write(tmp_path, "good.json", [_article("Good")])
    path = _write(tmp_path, "broken.json", '{"version": "1.1",\n  "data": [\n    {"title": "X",}\n  ]\n}')
    message = _error(ValueError, tmp_path)
    assert str(path) in message and "malformed JSON" in message and "line 3" in message and "column" in message


def test_missing_field_names_record(tmp_path):
    article = _article("Physics")
    del article["paragraphs"][0]["qas"][1]["question"]
    path = _write(tmp_path, "x.json", [article])
    message = _error(ValueError, tmp_path)
    assert str(path) in message and "'Physics'" in message and "'Physics-0-1'" in message
    assert "missing field 'question'" in message


def test_missing_data_and_wrong_type(tmp_path):
    path = _write(tmp_path, "x.json", '{"version": "1.1"}')
    assert "missing field 'data'" in _error(ValueError, tmp_path) and str(path) in _error(ValueError, tmp_path)
    article = _article("Types")
    article["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = "3"
    _write(tmp_path, "x.json", [article])
    assert "'answer_start' must be int" in _error(ValueError, tmp_path)


def test_bad_answer_start_names_question(tmp_path):
    article = _article("Chemistry")
    article["paragraphs"][0]["qas"][0]["answers"][2]["answer_start"] += 1
    path = _write(tmp_path, "x.json", [article])
    message = _error(ValueError, tmp_path)
    assert str(path) in message and "'Chemistry-0-0'" in message and "answer #2" in message
    assert "does not match the context" in message


def test_no_answers_is_an_error(tmp_path):
    article = _article("Empty")
    article["paragraphs"][0]["qas"][0]["answers"] = []
    _write(tmp_path, "x.json", [article])
    assert "'Empty-0-0'" in _error(ValueError, tmp_path)


def test_duplicate_id_within_and_across_files(tmp_path):
    a, b = _article("Alpha"), _article("Beta")
    b["paragraphs"][0]["qas"][0]["id"] = "Alpha-0-1"
    _write(tmp_path, "a.json", [a])
    path_b = _write(tmp_path, "b.json", [b])
    message = _error(ValueError, tmp_path)
    assert str(path_b) in message and "duplicate question id" in message and "'Alpha-0-1'" in message
    assert "a.json" in message  # names where it was seen first


def test_article_in_two_files(tmp_path):
    _write(tmp_path, "a.json", [_article("Shared")])
    shared = _article("Shared")
    for qa in shared["paragraphs"][0]["qas"]:
        qa["id"] += "-other"
    path_b = _write(tmp_path, "b.json", [shared])
    message = _error(ValueError, tmp_path)
    assert str(path_b) in message and "'Shared'" in message and "also appears in" in message


def test_empty_split_is_an_error(tmp_path):
    _write(tmp_path, "x.json", [_article(f"T{i}") for i in range(3)])
    with pytest.raises(ValueError, match="split 'test' is empty"):
        load_squad("test", data_dir=tmp_path, fractions=(1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="unknown SQuAD split"):
        load_squad("dev", data_dir=tmp_path)


def test_missing_folder_and_offline(tmp_path, monkeypatch):
    assert "does not exist" in _error(FileNotFoundError, tmp_path)
    (tmp_path / "squad").mkdir()
    assert "no *.json" in _error(FileNotFoundError, tmp_path)
    # Nothing to find: no $PRIORLIB_DATA, no priorlib checkout around the working directory or the package.
    from priorlib.data import examples
    monkeypatch.delenv("PRIORLIB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(examples, "__file__", str(tmp_path / "site" / "priorlib" / "data" / "examples.py"))
    monkeypatch.setenv("PRIORLIB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="offline mode is set .PRIORLIB_OFFLINE.*set PRIORLIB_DATA"):
        load_squad("train")


def test_edit_invalidates_memo(tmp_path):
    path = _write(tmp_path, "x.json", [_article(f"T{i}") for i in range(10)])
    assert len(squad_articles(tmp_path)) == 10
    path.write_text(json.dumps({"version": "1.1", "data": [_article(f"T{i}") for i in range(12)]}), encoding="utf-8")
    assert len(squad_articles(tmp_path)) == 12


# --------------------------------------------------------------------------- real dev set
@pytest.fixture
def real_data() -> Path:
    root = Path(data_dir() or REAL_DATA)
    if not (root / "squad").is_dir():
        pytest.skip(f"SQuAD dev set not found at {root / 'squad'} (set PRIORLIB_DATA)")
    return root


def test_real_dev_set_counts(real_data):
    articles = squad_articles(real_data)
    assert len(articles) == 48
    assert sum(len(p["qas"]) for a in articles for p in a["paragraphs"]) == 10_570
    parts = {s: load_squad(s, data_dir=real_data, seed=0) for s in ("train", "validation", "test")}
    n_articles = {s: len({e.meta["title"] for e in v}) for s, v in parts.items()}
    assert n_articles == {"train": 38, "validation": 5, "test": 5}
    assert sum(len(v) for v in parts.values()) == 10_570
    assert {s: len(v) for s, v in parts.items()} == {"train": 8309, "validation": 905, "test": 1356}
    for e in parts["validation"][:200]:
        assert e.prompt[e.keep_span[0]:e.keep_span[1]] == e.target[1:]
        assert e.target[1:] == e.answers[0]
