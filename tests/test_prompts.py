"""Parity of soft / deep prompts with the plain model and with a slow layer-by-layer reference, on a
Llama and on a Gemma-3 (BOS token in front, sqrt(d)-scaled embeddings, a rotary embedding per layer type)."""
import pytest
import torch

from priorlib import arch
from priorlib.batching import bos_ids
from priorlib.hooks import with_bos
from priorlib.prompts import PromptedLM

LLAMA_AND_GEMMA = ["tiny", "tiny_gemma"]
ALL_FIXTURES = ["tiny", "tiny_eager", "tiny_gemma", "tiny_gemma_eager"]


def _build(model, tok, **kw):
    """A PromptedLM with the tokenizer's BOS token (none for the Llama's SmolLM2 tokenizer)."""
    return PromptedLM.build(model, bos_ids=bos_ids(tok), **kw)


def _ids(tok, texts):
    from priorlib.hooks import tokenize_batch
    return tokenize_batch(tok, texts, 64, "cpu")


TEXTS = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France, and"]


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
@pytest.mark.parametrize("method", ["soft", "deep"])
def test_zero_prompt_tokens_equal_plain_model_exactly(fixture, method, request):
    model, tok = request.getfixturevalue(fixture)
    ids, _ = _ids(tok, TEXTS)
    plain = model(input_ids=with_bos(tok, ids)).logits
    lm = _build(model, tok, method=method, n_tokens=0)
    got = arch.lm_head(model)(lm.hidden(ids))
    assert torch.equal(got, plain)


def _reference_deep_cut(model, bos, soft, deep_blocks, ids):
    """Slow reference: run layer by layer, each with its own rotary embedding, concatenating the block
    before layer k and cutting after it; ``[BOS] + soft prompt + text`` at the input."""
    body = arch.backbone(model)
    parts = [body.embed_tokens(torch.tensor([list(bos)]))] if bos else []
    h = torch.cat(parts + [soft.expand(ids.shape[0], -1, -1), body.embed_tokens(ids)], 1)  # [B, b + n + T, d]
    pos = torch.arange(h.shape[1])[None]
    for i, layer in enumerate(body.layers):
        rope = arch.rope_for(model, i)
        if i in deep_blocks:
            m = deep_blocks[i].shape[0]
            hh = torch.cat([deep_blocks[i].expand(ids.shape[0], -1, -1), h], 1)
            p = torch.cat([torch.arange(-m, 0)[None], pos], 1)
            out = layer(hh, attention_mask=None, position_ids=p, position_embeddings=rope(hh, p))
            h = out[:, m:]
        else:
            h = layer(h, attention_mask=None, position_ids=pos, position_embeddings=rope(h, pos))
    return body.norm(h)


@pytest.mark.parametrize("fixture", LLAMA_AND_GEMMA)
@pytest.mark.parametrize("layers", [(-1,), (0, 2), (1, 3), (-3, -2, -1)])
def test_deep_cut_matches_slow_reference(fixture, layers, request):
    model, tok = request.getfixturevalue(fixture)
    ids, _ = _ids(tok, TEXTS[:1])  # one sequence: no padding anywhere
    g = torch.Generator().manual_seed(0)
    d = arch.d_model(model)
    lm = _build(model, tok, method="deep", n_tokens=5, deep_layers=layers)
    with torch.no_grad():
        for p in lm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    ref = _reference_deep_cut(model, bos_ids(tok), lm.soft.weight,
                              {i: lm.deep.block(i) for i in lm.deep.layer_ids}, ids)
    got = lm.hidden(ids)
    assert got.shape == ref.shape == (1, len(bos_ids(tok)) + 5 + ids.shape[1], d)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    # the deep prompt really changes the output (so the comparison above is not vacuous)
    lm0 = _build(model, tok, method="soft", n_tokens=5, soft_init=lm.soft.weight)
    assert (lm0.hidden(ids) - got).abs().max() > 1e-3


@pytest.mark.parametrize("mode", ["cut", "carry"])
def test_deep_prompt_same_with_eager_mask_and_sdpa(tiny, tiny_eager, mode):
    """The 4-D additive mask path (eager) and the mask-free path (sdpa) agree, padding included."""
    outs = []
    for model, tok in (tiny, tiny_eager):
        ids, mask = _ids(tok, TEXTS)
        torch.manual_seed(1)
        lm = PromptedLM.build(model, method="deep", n_tokens=4, deep_layers=(-2, -1), deep_mode=mode)
        with torch.no_grad():
            for p in lm.parameters():
                p.normal_(0, 0.3)
        outs.append((lm.hidden(ids)[:, 4:][mask]))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fixture", LLAMA_AND_GEMMA)
@pytest.mark.parametrize("method,mode", [("soft", "cut"), ("deep", "cut"), ("deep", "carry")])
def test_cached_generation_equals_full_recompute(fixture, method, mode, request):
    model, tok = request.getfixturevalue(fixture)
    ids, _ = _ids(tok, TEXTS[:1])
    torch.manual_seed(2)
    lm = _build(model, tok, method=method, n_tokens=3, deep_layers=(-2, -1), deep_mode=mode)
    with torch.no_grad():
        for p in lm.parameters():
            p.normal_(0, 0.5)
    got = lm.generate(ids[0], max_new_tokens=8)
    seq = ids[0].tolist()
    want = []
    for _ in range(8):  # no cache: recompute the whole sequence each step
        h = lm.hidden(torch.tensor([seq]))
        nxt = int(arch.lm_head(model)(h[:, -1]).argmax(-1))
        want.append(nxt)
        seq.append(nxt)
    assert got == want


def test_carry_mode_overwrites_prompt_positions(tiny):
    """In carry mode the soft-prompt rows entering layer k are replaced: changing the input-level prompt
    can only matter through layers below k."""
    model, tok = tiny
    ids, _ = _ids(tok, TEXTS[:1])
    lm = PromptedLM.build(model, method="deep", n_tokens=3, deep_layers=(0,), deep_mode="carry")
    with torch.no_grad():
        lm.deep.block(0).normal_()
        a = lm.hidden(ids)
        lm.soft.weight.normal_()  # layer 0 overwrites these rows before anything reads them
        b = lm.hidden(ids)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_only_prompts_are_parameters_and_get_gradients(tiny):
    model, tok = tiny
    ids, _ = _ids(tok, TEXTS[:1])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lm = PromptedLM.build(model, method="deep", n_tokens=4)
    names = {n for n, _ in lm.named_parameters()}
    assert names == {"soft.weight"} | {f"deep.weights.{i}" for i in lm.deep.layer_ids}
    labels = torch.full_like(ids, -100)
    labels[0, -3:] = ids[0, -3:]
    loss, n = lm.answer_loss(ids, labels)
    loss.backward()
    assert n == 3
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lm.parameters())
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("fixture", LLAMA_AND_GEMMA)
def test_answer_loss_equals_plain_model_loss_on_answer_tokens(fixture, request):
    """With no prompt, our answer-only loss is the LM's own shifted cross-entropy on those tokens
    (after the BOS token, where the model has one)."""
    model, tok = request.getfixturevalue(fixture)
    ids, _ = _ids(tok, TEXTS[:1])
    labels = torch.full_like(ids, -100)
    labels[0, 4:7] = ids[0, 4:7]
    lm = _build(model, tok, method="soft", n_tokens=0)
    loss, n = lm.answer_loss(ids, labels)
    nb = len(bos_ids(tok))
    plain_labels = torch.cat([torch.full((1, nb), -100, dtype=labels.dtype), labels], 1)
    want = model(input_ids=with_bos(tok, ids), labels=plain_labels).loss
    assert n == 3
    torch.testing.assert_close(loss / n, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
@pytest.mark.parametrize("method,mode", [("soft", "cut"), ("deep", "cut"), ("deep", "carry")])
def test_batched_generation_equals_one_by_one(fixture, method, mode, request):
    model, tok = request.getfixturevalue(fixture)
    seqs = [torch.tensor(tok(t, add_special_tokens=False)["input_ids"]) for t in
            ["Hello there, how are", "The quick brown fox jumps over the lazy dog and then", "One two"]]
    torch.manual_seed(3)
    lm = _build(model, tok, method=method, n_tokens=3, deep_layers=(-2, -1), deep_mode=mode)
    with torch.no_grad():
        for p in lm.parameters():
            p.normal_(0, 0.5)
    free = lm.generate(seqs[0], 6)
    k = next((i for i in range(1, 6) if free[i] not in free[:i]), 0)
    stop = [free[k]]  # a token the first row emits at step k: exercises early stopping
    batched = lm.generate_batch(seqs, max_new_tokens=6, stop_ids=stop, pad_id=tok.pad_token_id)
    single = [lm.generate(s, max_new_tokens=6, stop_ids=stop) for s in seqs]
    assert batched == single
    assert len(batched[0]) == k  # stopped early


def test_answer_scores_count_teacher_forced_greedy_hits(tiny):
    """Token accuracy: the answer tokens whose argmax prediction (given the gold prefix) is the gold token."""
    model, tok = tiny
    ids, _ = _ids(tok, TEXTS[:1])
    lm = PromptedLM.build(model, method="soft", n_tokens=2)
    with torch.no_grad():
        lm.soft.weight.normal_(0, 0.5)
    logits = arch.lm_head(model)(lm.hidden(ids))[0, 2:]  # [T, V]: row t predicts token t + 1
    pred = logits.argmax(-1)
    labels = torch.full_like(ids, -100)
    labels[0, 3:8] = ids[0, 3:8]
    want_hits = int((pred[2:7] == ids[0, 3:8]).sum())
    loss, n, hits = lm.answer_scores(ids, labels)
    assert n == 5 and hits == want_hits
    torch.testing.assert_close(torch.tensor(loss), lm.answer_loss(ids, labels)[0].detach())
    # labels set to the model's own greedy predictions are all hits
    labels[0, 3:8] = pred[2:7]
    assert lm.answer_scores(ids, labels)[2] == 5
