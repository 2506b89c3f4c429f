"""The one verdict type, its table, the JSON cleaner and the one results.json writer."""
from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from priorlib.compendium import verdicts as V
from priorlib.compendium.jsonable import jsonable


def test_outcome_of_a_rule():
    assert V.outcome_of(True) is V.Outcome.AGREES and V.outcome_of(np.bool_(False)) is V.Outcome.CONTRADICTS
    assert V.outcome_of(None) is V.Outcome.INCONCLUSIVE


def test_verdicts_use_the_protocols_outcomes():
    from priorlib import protocol
    assert V.Outcome is protocol.Outcome
    assert [o.value for o in V.Outcome] == ["agrees", "contradicts", "inconclusive", "holds by construction",
                                            "not testable at this learning rate", "uninformative"]
    v = V.Verdict("c", "m", "not testable at this learning rate")
    assert v.label == "not testable at this learning rate" and V.Verdict.from_dict(v.to_dict()) == v


def test_results_written_before_the_protocol_are_read_with_the_new_words():
    d = {"claim": "c", "measured": "m", "outcome": "disagrees", "by_model": {"a": "not tested", "b": "agrees"}}
    with pytest.raises(ValueError, match="one of"):
        V.Verdict("c", "m", "disagrees")  # new verdicts use the protocol's words only
    v = V.Verdict.from_dict({**d, "outcome": "inconclusive"})
    assert v.by_model == {"a": V.Outcome.INCONCLUSIVE, "b": V.Outcome.AGREES}
    assert V.Verdict.from_dict({**d, "by_model": {}}).outcome is V.Outcome.CONTRADICTS


def test_verdict_validates_and_round_trips():
    v = V.Verdict("MATH is far", "silhouette 0.41", "agrees")
    assert v.outcome is V.Outcome.AGREES and v.by_model == {} and v.label == "agrees"
    assert v.to_dict() == {"claim": "MATH is far", "measured": "silhouette 0.41", "outcome": "agrees", "by_model": {},
                           "claim_id": None}
    assert V.Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    tagged = V.Verdict("MATH is far", "silhouette 0.41", "agrees", claim_id="math-own-cluster")
    assert V.Verdict.from_dict(json.loads(json.dumps(tagged.to_dict()))).claim_id == "math-own-cluster"
    legacy = {"claim": "c", "measured": "m", "outcome": "agrees", "by_model": {}}  # results before the claim ids
    assert V.Verdict.from_dict(legacy).claim_id is None
    with pytest.raises(ValueError, match="exactly the keys"):
        V.Verdict.from_dict({**legacy, "claim_idd": "x"})
    with pytest.raises(ValueError, match="one of"):
        V.Verdict("c", "m", "yes")
    with pytest.raises(ValueError, match="non-empty string"):
        V.Verdict("", "m", V.Outcome.AGREES)
    with pytest.raises(ValueError, match="exactly the keys"):  # the old schemas are not read
        V.Verdict.from_dict({"paper's observation": "c", "what we measured": "m", "agrees?": "yes"})


def test_verdict_across_models():
    A, D, N = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE
    T = V.Outcome.NOT_TESTABLE
    cases = [({"a": A, "b": A}, A, "both"), ({"a": D, "b": D}, D, "neither"), ({"a": A, "b": D}, D, "a only"),
             ({"a": D, "b": A}, D, "b only"), ({"a": A, "b": N}, N, "inconclusive"), ({"a": D, "b": N}, N, "inconclusive"),
             ({"a": T, "b": A}, T, "not testable at this learning rate"),
             ({"a": A, "b": A, "c": A}, A, "all"), ({"a": A, "b": D, "c": A}, D, "a and c only")]
    for by_model, outcome, label in cases:
        v = V.Verdict.across("claim (on both models)", "a: x. b: y.", by_model)
        assert (v.outcome, v.label) == (outcome, label), by_model
        assert V.Verdict.from_dict(v.to_dict()) == v
    with pytest.raises(ValueError, match="contradicts"):
        V.Verdict("c", "m", A, {"a": A, "b": D})
    assert V.Verdict.across("c", "m", {"a": A, "b": A}, claim_id="x").claim_id == "x"


def test_replicates_asks_whether_the_models_agree_with_each_other():
    A, D, N = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE
    assert V.replicates({"a": A, "b": A}) is A and V.replicates({"a": D, "b": D}) is A
    assert V.replicates({"a": A, "b": D}) is D and V.replicates({"a": D, "b": N}) is N
    with pytest.raises(ValueError, match="two models"):
        V.replicates({"a": A})


def test_table_has_readable_headers_and_no_index():
    vs = [V.Verdict("c1", "m1", V.Outcome.AGREES), V.Verdict.across("c2", "m2", {"x": "agrees", "y": "contradicts"})]
    f = V.frame(vs)
    assert list(f.columns) == ["paper's observation", "what we measured", "verdict"]
    assert list(f["verdict"]) == ["agrees", "x only"]
    html = V.table(vs)._repr_html_()
    assert "x only" in html and "priorlib-result-table" in html and "<th>Paper's observation</th>" in html
    assert 'class="row_heading' not in html and "<th></th>" not in html  # no index column


class _Kind(str, Enum):
    A = "a"


@dataclasses.dataclass
class _Cfg:
    kind: _Kind
    out: Path
    lrs: tuple


def test_jsonable_turns_everything_into_plain_json():
    got = jsonable({"f32": np.float32(2.0), "nan": float("nan"), "inf": np.float64("inf"), "i": np.int64(3),
                    "b": np.bool_(True), "t": torch.ones(2), "arr": np.arange(2), "df": pd.DataFrame({"x": [1.0, np.nan]}),
                    "s": pd.Series({"p": 1}), "cfg": _Cfg(_Kind.A, Path("/tmp/x"), (1e-3,)), 0.005: "lr key",
                    np.int64(7): "np key", _Kind.A: "enum key", "na": pd.NA, "nested": [(1, {"k": np.float16(0.5)})]})
    assert got == {"f32": 2.0, "nan": None, "inf": None, "i": 3, "b": True, "t": [1.0, 1.0], "arr": [0, 1],
                   "df": [{"x": 1.0}, {"x": None}], "s": {"p": 1}, "cfg": {"kind": "a", "out": "/tmp/x", "lrs": [0.001]},
                   "0.005": "lr key", "7": "np key", "a": "enum key", "na": None, "nested": [[1, {"k": 0.5}]]}
    assert type(got["i"]) is int and type(got["b"]) is bool
    json.dumps(got, allow_nan=False)
    with pytest.raises(TypeError, match="no JSON form for a object"):
        jsonable({"x": object()})


def test_write_results_one_schema_strict_and_atomic(tmp_path):
    vs = [V.Verdict("c", "m", V.Outcome.INCONCLUSIVE)]
    out = tmp_path / "new" / "folder"
    path = V.write_results(out, {"x": float("nan"), "t": pd.DataFrame({"a": [1.0, np.nan]}), "n": np.int64(3)}, vs,
                           notebook="03_exclusion", profile="smoke", model="tiny-random-llama",
                           settings=_Cfg(_Kind.A, tmp_path, (5e-3,)))
    assert path == out / "results.json"
    d = json.loads(path.read_text())
    assert list(d)[:5] == ["notebook", "profile", "model", "settings", "verdicts"]
    assert d["notebook"] == "03_exclusion" and d["profile"] == "smoke" and d["model"] == "tiny-random-llama"
    assert d["settings"] == {"kind": "a", "out": str(tmp_path), "lrs": [0.005]}
    assert d["verdicts"] == [{"claim": "c", "measured": "m", "outcome": "inconclusive", "by_model": {}, "claim_id": None}]
    assert d["x"] is None and d["t"][1]["a"] is None and d["n"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]  # no temporary file left behind
    with pytest.raises(ValueError, match="header fields"):
        V.write_results(out, {"verdicts": []}, vs, notebook="03_exclusion", profile="smoke", model="m", settings={})
    with pytest.raises(TypeError, match="list of Verdict"):
        V.write_results(out, {}, [("c", "m", True)], notebook="03_exclusion", profile="smoke", model="m", settings={})
    with pytest.raises(TypeError, match="no JSON form"):  # nothing half-written: the old file stays
        V.write_results(out, {"bad": object()}, vs, notebook="03_exclusion", profile="smoke", model="m", settings={})
    assert json.loads(path.read_text())["notebook"] == "03_exclusion"


def test_results_record_an_out_dir_inside_the_repository_relative_to_it(tmp_path):
    from priorlib.compendium.paths import repo_root
    vs = [V.Verdict("c", "m", V.Outcome.INCONCLUSIVE)]
    inside = repo_root() / "_build" / "results" / "test-portable"
    try:
        d = json.loads(V.write_results(inside, {}, vs, notebook="03_exclusion", profile="smoke", model="m",
                                       settings={"out_dir": str(inside)}).read_text())
        assert d["settings"]["out_dir"] == "_build/results/test-portable"  # no machine path in the book
    finally:
        import shutil
        shutil.rmtree(inside, ignore_errors=True)
    d = json.loads(V.write_results(tmp_path, {}, vs, notebook="03_exclusion", profile="smoke", model="m",
                                   settings={"out_dir": str(tmp_path)}).read_text())
    assert d["settings"]["out_dir"] == str(tmp_path)  # a folder the user chose elsewhere stays as given
