"""Truncation keeps the answer and the question; batches are a pure function of (seed, step)."""
import pytest

from priorlib.batching import BucketSampler, encode, prompt_ids
from priorlib.data import Example


def _squad_like(pos: str):
    filler = " ".join(f"word{i}" for i in range(400))
    ctx = (filler + " The treaty was signed in Utrecht. " + filler) if pos == "middle" else \
        ("The treaty was signed in Utrecht. " + filler) if pos == "start" else (filler + " The treaty was signed in Utrecht.")
    prompt = f"{ctx}\nQuestion: where was the treaty signed?\nAnswer:"
    a = prompt.index("Utrecht")
    return Example(prompt, " Utrecht", ("Utrecht",), (a, a + len("Utrecht")), {"id": "q1"})


@pytest.mark.parametrize("pos", ["start", "middle", "end"])
def test_truncation_keeps_answer_span_and_question(tiny, pos):
    _, tok = tiny
    ex = _squad_like(pos)
    ids = prompt_ids(tok, ex, 64)
    text = tok.decode(ids)
    assert len(ids) == 64
    assert "Utrecht" in text and text.endswith("\nQuestion: where was the treaty signed?\nAnswer:")
    enc = encode(tok, ex, 80)
    assert enc.length <= 80 and enc.target_ids[-1] == tok.eos_token_id


def test_too_small_budget_is_a_clear_error(tiny):
    _, tok = tiny
    with pytest.raises(ValueError, match="q1: 10 prompt tokens cannot hold"):
        prompt_ids(tok, _squad_like("middle"), 10)


def test_sampler_is_deterministic_and_covers_each_epoch():
    lengths = [i % 17 for i in range(50)]
    a, b = BucketSampler(lengths, 5, seed=3), BucketSampler(lengths, 5, seed=3)
    assert [a.batch(s) for s in range(25)] == [b.batch(s) for s in range(25)]
    epoch = [i for s in range(10) for i in a.batch(s)]
    assert sorted(epoch) == list(range(50))
    assert [a.batch(s) for s in range(10)] != [BucketSampler(lengths, 5, seed=4).batch(s) for s in range(10)]
