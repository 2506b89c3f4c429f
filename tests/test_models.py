"""Model registry: offline loading, clear errors, and the real SmolLM2 model's known continuation."""
import time

import pytest
import torch

from priorlib.models import MODELS, ModelUnavailable, load_model


def test_registry_names():
    assert {"smollm2-135m", "tiny-random-llama", "gemma3-270m", "llama-3.2-1b"} <= set(MODELS)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'gpt-17'; choose one of"):
        load_model("gpt-17")


def test_hub_model_offline_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="meta-llama/Llama-3.2-1B needs the Hugging Face hub"):
        load_model("llama-3.2-1b")
    assert time.perf_counter() - t < 2


def test_tiny_model_is_deterministic_and_frozen(tiny):
    model, tok = tiny
    again, _ = load_model("tiny-random-llama")
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    assert not any(p.requires_grad for p in model.parameters())
    assert model.config.num_hidden_layers == 4 and len(tok) == 49152


@pytest.mark.slow
def test_smollm2_loads_offline_with_known_greedy_continuation(smollm):
    model, tok = smollm
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    emb = model.get_input_embeddings().weight
    assert abs(float(emb.std()) - 0.136) < 0.002  # Q8_0 embedding, dequantised
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert tok.decode(out[0, ids.shape[1]:]) == " Paris.\n"
