"""The one data-discovery rule (argument, $PRIORLIB_DATA, ../shared/data beside the repository, the hub)
and the hub probe that makes an offline fallback fail at once, in one line."""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from priorlib import data
from priorlib.data import examples, squad

REPO = Path(__file__).resolve().parents[1]


def _checkout(folder: Path, with_data: bool = True) -> Path:
    """A priorlib checkout at ``folder`` (pyproject.toml + priorlib/__init__.py), ``../shared/data`` optional."""
    (folder / "priorlib" / "data").mkdir(parents=True)
    (folder / "priorlib" / "__init__.py").write_text("")
    (folder / "pyproject.toml").write_text("[project]\nname = 'priorlib'\n")
    (folder / "notebooks").mkdir()
    if with_data:
        (folder.parent / "shared" / "data").mkdir(parents=True)
    return folder.parent / "shared" / "data"


@pytest.fixture
def clean(tmp_path, monkeypatch):
    """No $PRIORLIB_DATA, the working directory in an empty folder, this package imported from a fake
    checkout without ../shared beside it, the hub probe forgotten: nothing is found unless a test adds it."""
    for name in ("PRIORLIB_DATA", "PRIORLIB_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    monkeypatch.chdir(nowhere)
    package = tmp_path / "installed" / "site"
    package.mkdir(parents=True)
    monkeypatch.setattr(examples, "__file__", str(package / "priorlib" / "data" / "examples.py"))
    monkeypatch.setattr(examples, "_PROBES", {})
    monkeypatch.setattr(squad, "_ARTICLE_CACHE", {})
    return tmp_path


def test_nothing_found_is_none(clean):
    assert data.data_dir() is None
    assert examples.data_dir_search() == ("$PRIORLIB_DATA is unset and there is no ../shared/data beside the "
                                          "repository (no priorlib checkout in the working directory or above)")


def test_order_argument_then_env_then_beside(clean, monkeypatch):
    shared = _checkout(clean / "a" / "repo")
    monkeypatch.chdir(clean / "a" / "repo")
    assert data.data_dir() == shared
    monkeypatch.setenv("PRIORLIB_DATA", str(clean / "env"))
    assert data.data_dir() == clean / "env"
    assert data.data_dir(clean / "arg") == clean / "arg"
    assert data.data_dir(str(clean / "arg")) == clean / "arg"
    monkeypatch.setenv("PRIORLIB_DATA", "  ")  # empty counts as unset
    assert data.data_dir() == shared


def test_beside_repository_from_notebooks_folder_and_from_the_package(clean, monkeypatch):
    shared = _checkout(clean / "a" / "repo")
    monkeypatch.chdir(clean / "a" / "repo" / "notebooks")  # a papermill kernel's working directory
    assert data.data_dir() == shared
    # Library calls from anywhere: the checkout this package is imported from (an editable install).
    other = _checkout(clean / "b" / "repo")
    monkeypatch.setattr(examples, "__file__", str(clean / "b" / "repo" / "priorlib" / "data" / "examples.py"))
    monkeypatch.chdir(clean / "nowhere")
    assert data.data_dir() == other
    # The working directory's checkout comes first; one without ../shared/data is passed over.
    monkeypatch.chdir(clean / "a" / "repo")
    assert data.data_dir() == shared
    _checkout(clean / "c" / "repo", with_data=False)
    monkeypatch.chdir(clean / "c" / "repo" / "notebooks")
    assert data.data_dir() == other
    assert examples._checkouts() == [clean / "c" / "repo", clean / "b" / "repo"]


def test_a_folder_named_shared_without_a_checkout_is_not_used(clean, monkeypatch):
    (clean / "x" / "shared" / "data").mkdir(parents=True)
    (clean / "x" / "project").mkdir()
    (clean / "x" / "project" / "pyproject.toml").write_text("[project]\nname = 'other'\n")
    monkeypatch.chdir(clean / "x" / "project")
    assert data.data_dir() is None


def test_real_checkout_finds_shared_data_beside_it(monkeypatch, tmp_path):
    if not (REPO.parent / "shared" / "data").is_dir():
        pytest.skip(f"no {REPO.parent / 'shared' / 'data'} beside this checkout")
    monkeypatch.delenv("PRIORLIB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    if Path(examples.__file__).resolve().parents[2] != REPO:
        pytest.skip("priorlib is not imported from this checkout")
    assert data.data_dir() == REPO.parent / "shared" / "data"
    monkeypatch.chdir(REPO / "notebooks")
    assert data.data_dir() == REPO.parent / "shared" / "data"


# --------------------------------------------------------------------------- the hub probe
def test_offline_flags_answer_without_a_probe(clean, monkeypatch):
    def no_probe(*args, **kwargs):
        raise AssertionError("probed although offline mode is set")
    monkeypatch.setattr(socket, "create_connection", no_probe)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PRIORLIB_OFFLINE", "0")
    assert data.hub_unreachable() == "offline mode is set (HF_HUB_OFFLINE)"


def test_refused_connection_is_probed_once(clean, monkeypatch):
    with socket.socket() as s:  # a port that was just free: connecting is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    reason = data.hub_unreachable()
    assert time.perf_counter() - t0 < 1.5
    assert reason.startswith(f"127.0.0.1:{port} is unreachable: ") and "\n" not in reason
    calls = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: calls.append(a))
    assert data.hub_unreachable() == reason and calls == []  # decided once per process


def test_answering_host_is_reachable(clean, monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert data.hub_unreachable() is None


def test_hanging_resolution_is_cut_at_the_timeout(clean, monkeypatch):
    def hang(*args, **kwargs):  # like a resolver that never answers
        time.sleep(2)
        raise OSError("resolver gave up")
    monkeypatch.setattr(socket, "create_connection", hang)
    t0 = time.perf_counter()
    assert data.hub_unreachable(timeout=0.2) == "huggingface.co:443 did not answer within 0.2 s"
    assert time.perf_counter() - t0 < 1.0


def test_proxy_is_probed_instead_of_the_hub(clean, monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert examples._hub_address() == ("proxy.invalid", 3128)


# --------------------------------------------------------------------------- loaders use the rule
def _squad_files(folder: Path) -> None:
    (folder / "squad").mkdir(parents=True)
    context = "Paris is the capital of France."
    articles = [{"title": f"T{i}", "paragraphs": [{"context": context, "qas": [
        {"id": f"q{i}", "question": "What is the capital?", "answers": [{"text": "Paris", "answer_start": 0}]}]}]}
        for i in range(10)]
    (folder / "squad" / "dev.json").write_text(json.dumps({"version": "1.1", "data": articles}))


def test_squad_reads_the_folder_beside_the_repository(clean, monkeypatch):
    shared = _checkout(clean / "a" / "repo")
    _squad_files(shared)
    monkeypatch.chdir(clean / "a" / "repo" / "notebooks")
    assert data.check_data("squad") == str(shared / "squad")
    assert len(data.squad_articles()) == 10
    assert data.load_squad("train")[0].answers == ("Paris",)


def test_squad_without_data_or_network_fails_at_once_in_one_line(clean, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for call in (lambda: data.load_squad("train"), lambda: data.check_data("squad"), data.squad_articles):
        t0 = time.perf_counter()
        with pytest.raises(FileNotFoundError) as info:
            call()
        assert time.perf_counter() - t0 < 2.0
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("no SQuAD data: $PRIORLIB_DATA is unset and there is no ../shared/data beside")
        assert f"the hub cannot be used (127.0.0.1:{port} is unreachable: " in message
        assert message.endswith("set PRIORLIB_DATA (or pass data_dir) to a folder holding squad/*.json")


def test_check_data_names_the_missing_folder(clean, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"SQuAD folder .*/empty/squad does not exist"):
        data.check_data("squad", tmp_path / "empty")
    (tmp_path / "empty" / "squad").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no \\*.json files in SQuAD folder"):
        data.check_data("squad", tmp_path / "empty")
    assert data.check_data("math") == "generated locally (mathematics_dataset)"
    assert data.check_data("capitals") is None


def test_c4_without_files_or_network_fails_at_once(clean, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        data.load_web(3, source="c4")
    assert time.perf_counter() - t0 < 2.0
    assert str(info.value).startswith("no local C4 files (no data directory found; expected <data_dir>/c4/")
    assert "the hub cannot be used: offline mode is set (HF_HUB_OFFLINE)" in str(info.value)


# --------------------------------------------------------------------------- a chapter's setup checks it
def test_chapter_setup_finds_the_data_as_the_book_does_or_says_what_to_set(clean, monkeypatch):
    """A notebook executed by plain papermill (no `priorlib book`, no Makefile, no $PRIORLIB_DATA) calls
    setup() first: it finds ../shared/data beside the checkout from the kernel's working directory, and
    without any data it stops there, before a model loads, in one line that names PRIORLIB_DATA."""
    from priorlib.compendium.setup import setup

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as info:
        setup("02_lr_priors", "smoke")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("chapter 02_lr_priors: no SQuAD data: $PRIORLIB_DATA is unset and there is no "
                              "../shared/data beside the repository")
    assert message.endswith("set PRIORLIB_DATA (or pass data_dir) to a folder holding squad/*.json")

    shared = _checkout(clean / "a" / "repo")
    _squad_files(shared)
    monkeypatch.chdir(clean / "a" / "repo" / "notebooks")  # papermill --cwd notebooks, or the fixture's cwd
    assert setup("02_lr_priors", "smoke").priors
    monkeypatch.setenv("PRIORLIB_DATA", str(clean / "elsewhere"))  # set, but wrong: named at once
    with pytest.raises(FileNotFoundError, match=r"^chapter 08_posterior_transfer: SQuAD folder .*/elsewhere/squad "
                                                r"does not exist"):
        setup("08_posterior_transfer", "smoke")
