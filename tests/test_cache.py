"""priorlib.cache: the one content-addressed cache (hits, misses, formats, atomic entries, fingerprints)."""
import json

import numpy as np
import pytest
import torch

from priorlib.cache import artifacts_dir, cache_enabled, cached, fingerprint, params_key


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("PRIORLIB_NO_CACHE", raising=False)


def test_cache_hit_miss_and_formats():
    calls = []

    def compute():
        calls.append(1)
        return {"t": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a": np.array([1.5, 2.5]), "s": 3.0}

    first = cached("unit", {"n": 2, "layers": (1, 2)}, compute, verbose=False)
    again = cached("unit", {"layers": [1, 2], "n": 2}, compute, verbose=False)  # same JSON, other order
    assert len(calls) == 1
    assert isinstance(again["t"], torch.Tensor) and torch.equal(again["t"], first["t"])
    assert isinstance(again["a"], np.ndarray) and np.array_equal(again["a"], first["a"])
    assert float(again["s"]) == 3.0 and list(again) == ["t", "a", "s"]
    cached("unit", {"n": 3, "layers": (1, 2)}, compute, verbose=False)  # any change recomputes
    assert len(calls) == 2
    files = sorted(p.suffix for p in artifacts_dir().iterdir())
    assert ".pkl" not in files and {".json", ".safetensors", ".npz"} <= set(files)
    meta = json.loads(next(artifacts_dir().glob("unit-*.json")).read_text())
    assert meta["params"]["n"] in (2, 3)


def test_cache_incomplete_entry_is_a_miss_and_no_cache_env(monkeypatch):
    calls = []
    compute = lambda: (calls.append(1), {"a": np.ones(3)})[1]  # noqa: E731
    cached("inc", {"x": 1}, compute, verbose=False)
    next(artifacts_dir().glob("inc-*.npz")).unlink()  # a half-written entry must not count as a hit
    cached("inc", {"x": 1}, compute, verbose=False)
    assert len(calls) == 2
    monkeypatch.setenv("PRIORLIB_NO_CACHE", "1")
    cached("inc", {"x": 1}, compute, verbose=False)
    assert len(calls) == 3
    assert params_key("a", {"x": 1}) != params_key("b", {"x": 1})
    with pytest.raises(TypeError):
        params_key("a", {"x": object()})


def test_no_cache_env_values(monkeypatch):
    for value, enabled in (("", True), ("0", True), ("1", False), ("true", False), ("YES", False)):
        monkeypatch.setenv("PRIORLIB_NO_CACHE", value)
        assert cache_enabled() is enabled


def test_fingerprint_of_texts_and_arrays():
    assert fingerprint(["ab", "c"]) == fingerprint(["ab", "c"])
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])  # length-prefixed: no collision by joining
    assert fingerprint(["ab"]) == fingerprint("ab") != fingerprint(["ab", ""])
    a = np.arange(6, dtype=np.float32)
    assert fingerprint(a) == fingerprint(torch.arange(6, dtype=torch.float32))  # same dtype, shape and bytes
    assert fingerprint(a) != fingerprint(a.reshape(2, 3)) != fingerprint(a.astype(np.float64))
    assert len(fingerprint(a)) == 16


def test_no_temporary_files_left_and_no_pickle():
    cached("clean", {"x": 1}, lambda: {"t": torch.ones(2), "a": np.zeros(3)}, verbose=False)
    names = sorted(p.name for p in artifacts_dir().iterdir())
    assert len(names) == 3 and not [n for n in names if ".tmp" in n or n.endswith(".pkl")]
    with np.load(next(artifacts_dir().glob("clean-*.npz")), allow_pickle=False) as z:
        assert list(z.files) == ["a"]


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="object array"):
        cached("obj", {}, lambda: {"a": np.array([{"x": 1}], dtype=object)}, verbose=False)
    assert not list(artifacts_dir().glob("obj-*.json"))  # nothing that could count as a hit


def test_activation_reference_goes_through_the_cache(tiny):
    from priorlib.initial import activation_reference

    model, tok = tiny
    texts = ["The cat sat on the mat.", "Two plus two is four."]
    a = activation_reference(model, tok, texts, "layers.1.resid_pre", model_name="tiny-random-llama", max_length=16)
    (meta,) = artifacts_dir().glob("activation-reference-*.json")
    assert json.loads(meta.read_text())["params"]["point"] == "layers.1.resid_pre"
    b = activation_reference(model, tok, texts, "layers.1.resid_pre", model_name="tiny-random-llama", max_length=16)
    assert torch.equal(a.vectors, b.vectors) and len(a) == sum(len(tok(t)["input_ids"]) for t in texts)
    activation_reference(model, tok, texts[:1], "layers.1.resid_pre", model_name="tiny-random-llama", max_length=16)
    assert len(list(artifacts_dir().glob("activation-reference-*.json"))) == 2  # other texts, other entry


def test_cache_is_silent_on_stdout_and_logs_hits(tmp_path, monkeypatch, capsys, caplog):
    """Hits and stores go to the ``priorlib.cache`` logger, not stdout: the book's cells stay clean."""
    import logging
    from priorlib import cache
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="priorlib.cache"):
        cache.cached("quiet", {"a": 1}, lambda: {"x": [1.0]})
        cache.cached("quiet", {"a": 1}, lambda: {"x": [2.0]})
    assert capsys.readouterr().out == ""
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["cache store", "cache hit"]


def test_an_engine_bump_changes_every_cache_key(monkeypatch):
    from priorlib import engine
    before = params_key("capture", {"x": 1})
    monkeypatch.setattr(engine, "ENGINE_VERSION", engine.ENGINE_VERSION + 1)
    assert params_key("capture", {"x": 1}) != before
