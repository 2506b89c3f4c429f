"""Runs notebook 01 end to end with the smoke profile (tiny random Llama) and checks what it recorded."""
import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "01_proof_of_concept.ipynb"


def _finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _finite_numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def test_source_notebook_is_clean():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "remove-cell" in tagged[0].metadata["tags"]
    for name in ("profile", "model", "n_web", "n_squad", "n_math_per_module", "layers", "seed", "max_length",
                 "tsne_perplexity", "out_dir"):
        assert f"\n{name} = " in "\n" + tagged[0].source
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_notebook_01_smoke(tmp_path, monkeypatch):
    pm = pytest.importorskip("papermill")
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "artifacts"))  # compute, do not reuse a cache
    out_dir = tmp_path / "out"
    pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "01.ipynb"), kernel_name="python3", cwd=str(REPO),
                        parameters={"profile": "smoke", "out_dir": str(out_dir)}, progress_bar=False)
    res = json.loads((out_dir / "results.json").read_text())
    assert res["notebook"] == "01_proof_of_concept" and res["profile"] == "smoke"
    assert res["model"] == res["settings"]["model"] == "tiny-random-llama"
    assert "stand-in for C4" in res["web_source"] or "C4" in res["web_source"]
    for key in ("q1", "q2", "q3", "q4", "q5", "verdicts", "wall_seconds"):
        assert key in res
    assert set(res["q1"]) == {"vocab", "unigram", "shuffled"}
    for t in res["q1"].values():
        assert t["median_ratio"] > 0 and -1 <= t["cliffs_delta"] <= 1 and 0 <= t["p_value"] <= 1
    assert len(res["q2"]["per_layer"]) == 5  # embeddings + 4 blocks of the tiny model
    assert 0 <= res["q3"]["overlap"]["mixing"] <= 2 and 0 <= res["q3"]["overlap"]["probe_accuracy"] <= 1
    assert 0 <= res["q4"]["n_bimodal"] <= res["q4"]["n_layers"] == 5
    for k in ("silhouette_math_vs_nlp", "silhouette_squad_vs_web"):
        assert -1 <= res["q5"][k] <= 1
    assert len(res["verdicts"]) == 5 and {v["outcome"] for v in res["verdicts"]} <= {"agrees", "disagrees"}
    numbers = list(_finite_numbers({k: res[k] for k in ("q1", "q2", "q3", "q4", "q5")}))
    assert numbers and all(math.isfinite(x) for x in numbers)
    assert list((tmp_path / "artifacts").glob("nb01-web-*.json"))  # the capture went through the cache
