"""Deep prompts on the top layers only: caching the frozen lower layers gives the same loss and gradients."""
import pytest
import torch

from priorlib.prompts import PromptedLM


@pytest.mark.parametrize("fixture", ["tiny", "tiny_eager", "tiny_gemma", "tiny_gemma_eager"])
def test_cached_lower_layers_give_identical_gradients(fixture, request):
    from priorlib.batching import bos_ids
    model, tok = request.getfixturevalue(fixture)
    from priorlib.hooks import tokenize_batch
    ids, mask = tokenize_batch(tok, ["Paris is the capital of France, and Rome", "Two plus two is four"], 64, "cpu")
    labels = torch.full_like(ids, -100)
    labels[0, 5:8] = ids[0, 5:8]
    labels[1, 3:5] = ids[1, 3:5]
    torch.manual_seed(0)
    lm = PromptedLM.build(model, method="deep", n_tokens=4, deep_layers=(-2, -1), token_prompt=False,
                          bos_ids=bos_ids(tok))
    with torch.no_grad():
        for p in lm.parameters():
            p.normal_(0, 0.3)
    assert lm.lower_layers_frozen_below() == 2
    full, n = lm.answer_loss(ids, labels)
    full.backward()
    g_full = {k: v.grad.clone() for k, v in lm.named_parameters()}
    lm.zero_grad()
    states = lm.frozen_states(ids)
    assert not states.requires_grad
    cached, n2 = lm.loss_from_hidden(lm.hidden_from_states(states), labels)
    cached.backward()
    assert n == n2
    torch.testing.assert_close(cached, full, rtol=1e-6, atol=1e-6)
    for k, v in lm.named_parameters():
        torch.testing.assert_close(v.grad, g_full[k], rtol=1e-5, atol=1e-7)
        assert v.grad.abs().sum() > 0


def test_cache_refused_when_a_token_prompt_reaches_every_layer(tiny):
    model, tok = tiny
    lm = PromptedLM.build(model, method="deep", n_tokens=2, deep_layers=(-1,), token_prompt=True)
    assert lm.lower_layers_frozen_below() == 0
    with pytest.raises(ValueError, match="nothing below it can be cached"):
        lm.hidden_from_states(torch.zeros(1, 3, model.config.hidden_size))
