import json
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
if "PRIORLIB_DATA" not in os.environ and SHARED_DATA.exists():
    os.environ["PRIORLIB_DATA"] = str(SHARED_DATA)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# eager layers for the suite (each compiled model costs seconds to trace); tests/test_compiled.py checks
# the compiled path against eager mode and turns it back on
os.environ.setdefault("PRIORLIB_COMPILE", "0")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the 4-layer random Llama, fp32, eager-free sdpa attention."""
    from priorlib.models import load_model
    return load_model("tiny-random-llama")


@pytest.fixture(scope="session")
def tiny_eager():
    from priorlib.models import load_model
    return load_model("tiny-random-llama", attn_implementation="eager")


@pytest.fixture(scope="session")
def smollm():
    from priorlib.models import load_model
    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def real_precision():
    """The precision for tests that train the real model: bf16 (the default) where the CPU computes it
    natively, else fp32 (without AVX512-BF16/AMX a bf16 SmolLM2 step takes ~80 s, not ~1 s:
    priorlib.hardware). The properties those tests check do not depend on it."""
    from priorlib.hardware import native_bf16
    return "fp32" if native_bf16("cpu") is False else "bf16"


@pytest.fixture(scope="session")
def tiny_gemma():
    """(model, tokenizer) of the 4-layer random Gemma-3 (BOS token, sqrt(d)-scaled embeddings), sdpa."""
    from priorlib.models import load_model
    return load_model("tiny-random-gemma3")


@pytest.fixture(scope="session")
def tiny_gemma_eager():
    from priorlib.models import load_model
    return load_model("tiny-random-gemma3", attn_implementation="eager")


@pytest.fixture
def smoke_notebook(tmp_path, monkeypatch):
    """``run(name) -> results.json``: execute ``notebooks/<name>.ipynb`` with papermill in the smoke
    profile, with a fresh run store and a fresh evidence bank under ``tmp_path``.

    The notebook runs as under ``priorlib evidence run`` (the kernel inherits the environment): every run it
    asks ``run_all`` for is exported into that bank, and the keys it asked for, in order, are recorded;
    ``run.planned(name)`` returns them (``[]`` when the notebook asked for none)."""
    bank = tmp_path / "evidence"

    def run(name: str, **parameters) -> dict:
        import papermill as pm
        from priorlib.compendium import evidence
        monkeypatch.setenv("PRIORLIB_RUNS", str(tmp_path / "runs"))
        monkeypatch.setenv("PRIORLIB_EVIDENCE", str(bank))  # never the repository's bank
        monkeypatch.setenv(evidence.EXPORT_ENV, "1")
        monkeypatch.setenv(evidence.CHAPTER_ENV, name)
        monkeypatch.setenv("PRIORLIB_EVIDENCE_STARTED", f"smoke-{name}")
        out = tmp_path / "out"
        pm.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                            parameters={"profile": "smoke", "out_dir": str(out), **parameters},
                            kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False)
        return json.loads((out / "results.json").read_text())

    def planned(name: str) -> list[str]:
        path = bank / "plans" / f"{name}.json"
        return list(json.loads(path.read_text())["runs"]) if path.exists() else []

    run.planned = planned
    return run
