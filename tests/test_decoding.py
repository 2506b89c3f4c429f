"""Cached greedy decoding (``generate``, ``generate_batch``) against teacher forcing: the logits of every
decoding step equal the LM head on :meth:`PromptedLM.hidden` of the sequence so far, at its last position."""
import pytest
import torch

from priorlib import arch
from priorlib.batching import bos_ids
from priorlib.prompts import PromptedLM

ALL_FIXTURES = ["tiny", "tiny_eager", "tiny_gemma", "tiny_gemma_eager"]
TEXTS = ["Hello there, how are", "The quick brown fox jumps over the lazy dog and then", "One two"]


def _randomise(lm, seed=0, std=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def _with_step_logits(lm, run):
    """``(run(), logits)``: ``logits[t]`` is the LM head's output ``[B, V]`` at decoding step ``t``."""
    seen = []
    handle = arch.lm_head(lm.model).register_forward_hook(lambda mod, args, out: seen.append(out.detach().clone()))
    try:
        return run(), seen
    finally:
        handle.remove()


@torch.no_grad()
def _teacher_forced(lm, seq: list[int]) -> torch.Tensor:
    """The next-token logits ``[V]`` after ``seq``, without a cache."""
    return arch.lm_head(lm.model)(lm.hidden(torch.tensor([seq]))[:, -1])[0]


def _assert_steps_match_teacher_forcing(lm, seqs, outs, logits, atol):
    for b, (s, out) in enumerate(zip(seqs, outs)):
        full = s.tolist() + out
        for t in range(len(out)):
            torch.testing.assert_close(logits[t][b], _teacher_forced(lm, full[:len(s) + t]), rtol=0, atol=atol,
                                       msg=lambda m: f"row {b}, step {t}: {m}")


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
@pytest.mark.parametrize("token_prompt", [True, False])
def test_deep_cut_at_layer_0_decodes_like_teacher_forcing(fixture, token_prompt, request):
    """Layer 0's cache holds the block, and HF sizes the decoding mask of every layer from it."""
    model, tok = request.getfixturevalue(fixture)
    seqs = [torch.tensor(tok(t, add_special_tokens=False)["input_ids"]) for t in TEXTS]
    lm = PromptedLM.build(model, method="deep", n_tokens=3, deep_layers=(0,), token_prompt=token_prompt,
                          bos_ids=bos_ids(tok))
    _randomise(lm)
    steps = 5
    batched, logits = _with_step_logits(lm, lambda: lm.generate_batch(seqs, steps, pad_id=tok.pad_token_id))
    assert [len(o) for o in batched] == [steps] * len(seqs) and len(logits) == steps
    for t in range(steps):
        assert logits[t].shape == (len(seqs), model.config.vocab_size)
    _assert_steps_match_teacher_forcing(lm, seqs, batched, logits, atol=1e-4)
    for b, s in enumerate(seqs):
        single, one = _with_step_logits(lm, lambda: lm.generate(s, steps))
        assert single == batched[b]
        torch.testing.assert_close(one[0][0], logits[0][b], rtol=0, atol=1e-4)


GEMMAS = ["tiny_gemma", "tiny_gemma_eager"]
PROMPTS_ON_SLIDING_LAYERS = [dict(method="soft"), dict(method="deep", deep_layers=(0, 1)),
                             dict(method="deep", deep_layers=(-3, -2, -1))]  # tiny Gemma: layers 0-2 slide


def _random_ids(n, seed):
    return torch.randint(100, 5000, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fixture", GEMMAS)
@pytest.mark.parametrize("kw", PROMPTS_ON_SLIDING_LAYERS, ids=["soft", "deep01", "deep_top3"])
@pytest.mark.parametrize("extra", [-8, 20], ids=["window_passed_while_decoding", "window_passed_at_prefill"])
def test_short_row_beside_a_long_row_decodes_as_alone(fixture, kw, extra, request):
    """Rows are ``[BOS | prompt | padding | text]``. The sliding window counts positions, not columns: the
    padding a long row forces on a short one must not push the short row's BOS and prompt out of it."""
    model, tok = request.getfixturevalue(fixture)
    window = model.config.sliding_window
    short, long = _random_ids(6, 1), _random_ids(window + extra, 2)
    lm = PromptedLM.build(model, n_tokens=4, bos_ids=bos_ids(tok), **kw)
    _randomise(lm)
    steps = 12
    assert lm.n_prefix + len(long) + steps > window  # columns of the short row pass the window
    alone, alone_logits = _with_step_logits(lm, lambda: lm.generate_batch([short], steps, pad_id=tok.pad_token_id))
    both, both_logits = _with_step_logits(lm, lambda: lm.generate_batch([short, long], steps, pad_id=tok.pad_token_id))
    assert both[0] == alone[0] == lm.generate(short, steps)
    for t in range(steps):
        torch.testing.assert_close(both_logits[t][0], alone_logits[t][0], rtol=0, atol=1e-4,
                                   msg=lambda m: f"short row, step {t}: {m}")
    assert both[1] == lm.generate(long, steps)
    _assert_steps_match_teacher_forcing(lm, [short, long], both, both_logits, atol=1e-4)


@pytest.mark.parametrize("fixture", GEMMAS)
@pytest.mark.parametrize("kw", PROMPTS_ON_SLIDING_LAYERS, ids=["soft", "deep01", "deep_top3"])
def test_decoding_past_the_window_equals_teacher_forcing(fixture, kw, request):
    """One row whose decoding passes the sliding window: the deep blocks of sliding layers stay visible."""
    model, tok = request.getfixturevalue(fixture)
    seq = _random_ids(model.config.sliding_window - 4, 3)
    lm = PromptedLM.build(model, n_tokens=4, bos_ids=bos_ids(tok), **kw)
    _randomise(lm)
    out, logits = _with_step_logits(lm, lambda: lm.generate(seq, 10))
    assert len(out) == len(logits) == 10
    _assert_steps_match_teacher_forcing(lm, [seq], [out], logits, atol=1e-4)
