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
