"""Evaluation never sees the answer: whole prompts, a held-out set chosen by prompt length only,
greedy answers stopped at a newline; training's answer window handles contexts with newlines."""
import pytest
import torch

from priorlib import tasks
from priorlib.batching import encode, prompt_ids
from priorlib.data import Example

CONTEXT = ("The river rises in the hills. " * 6 + "Its water is SiO\n2 rich near the town of Paris. "
           + "Farms line its banks. " * 6)


def _squad_like(answer: str, context: str = CONTEXT, last: bool = False) -> Example:
    start = context.rindex(answer) if last else context.index(answer)
    prompt = f"{context}\nQuestion: where?\nAnswer:"
    return Example(prompt, " " + answer, (answer,), keep_span=(start, start + len(answer)), cut_end=len(context))


def test_gold_position_does_not_change_the_evaluation_prompt(tiny):
    _, tok = tiny
    early, late = _squad_like("river"), _squad_like("banks", last=True)  # same context and question, answers far apart
    assert early.keep_span[0] < 10 < len(CONTEXT) - 10 < late.keep_span[0]
    h = tasks.held_out_set(tok, [early, late], n=2, max_prompt_tokens=10_000)
    assert h.encoded[0].prompt_ids == h.encoded[1].prompt_ids  # whole and identical
    assert tok.decode(h.encoded[0].prompt_ids) == early.prompt
    # the training encoder, by contrast, does look at the answer: the two windows differ
    budget = len(h.encoded[0].prompt_ids) // 2
    assert prompt_ids(tok, early, budget) != prompt_ids(tok, late, budget)


def test_held_out_set_leaves_long_prompts_out_by_their_length_only(tiny):
    _, tok = tiny
    short = [Example(f"Question {i}?\nAnswer:", " yes", ("yes",)) for i in range(5)]
    long = Example("word " * 400 + "\nQuestion: ?\nAnswer:", " no", ("no",))
    long_answer = Example("Question 9?\nAnswer:", " " + "very long answer " * 50, ("x",))  # kept: the answer is not read
    pool = [short[0], long, short[1], long_answer, short[2], short[3], short[4]]
    h = tasks.held_out_set(tok, pool, n=4, max_prompt_tokens=50)
    assert h.examples == [short[0], short[1], long_answer, short[2]]
    assert (h.scanned, h.left_out) == (5, 1) and h.left_out_share == pytest.approx(0.2)
    assert h.encoded[2].target_ids[:-1] == tuple(tok(long_answer.target, add_special_tokens=False)["input_ids"])
    with pytest.raises(ValueError, match="raise eval_max_length"):
        tasks.held_out_set(tok, [long], n=1, max_prompt_tokens=50)


def test_training_window_cuts_a_context_holding_newlines(tiny):
    """Engine 1 cut only up to the first newline after the answer, so the context's text after "SiO\\n"
    counted as the question and could not be cut: it raised. With ``cut_end`` the whole context is cut."""
    _, tok = tiny
    ex = _squad_like("river")  # the answer comes before the context's newline
    old_rule = Example(ex.prompt, ex.target, ex.answers, keep_span=ex.keep_span)  # no cut_end: engine 1
    with pytest.raises(ValueError, match="cannot hold the answer span"):
        prompt_ids(tok, old_rule, 40)
    ids = prompt_ids(tok, ex, 40)
    text = tok.decode(ids)
    assert len(ids) == 40 and "river" in text and text.endswith("\nQuestion: where?\nAnswer:")
    late = prompt_ids(tok, _squad_like("Paris"), 40)  # a window holding the newline keeps it
    assert "SiO\n2" in tok.decode(late) and "Paris" in tok.decode(late)


def test_cut_end_is_validated():
    with pytest.raises(ValueError, match="cut_end"):
        Example("abc", " x", ("x",), cut_end=10)
    with pytest.raises(ValueError, match="ends after cut_end"):
        Example("abcdef", " x", ("x",), keep_span=(2, 5), cut_end=3)


class _Scripted(torch.nn.Module):
    """An LM stand-in whose greedy answer is fixed text; records the stop ids it was given."""

    def __init__(self, tok, text):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.ids = tok(text, add_special_tokens=False)["input_ids"]

    def score_and_generate(self, seqs, targets, max_new_tokens, stop_ids=(), pad_id=None):
        assert targets is None  # generation_scores decodes only
        self.stop_ids = set(stop_ids)
        out = []
        for _ in seqs:
            ids = []
            for i in self.ids[:max_new_tokens]:
                ids.append(i)
                if i in self.stop_ids:
                    break
            out.append(ids)
        return None, out


@pytest.mark.parametrize("text, expected", [(" Paris\nThe answer is Paris", "Paris"), (" Paris", "Paris"),
                                            (" 1.5\n\nQuestion:", "1.5")])
def test_generation_stops_and_is_cut_at_a_newline(tiny, text, expected):
    import contextlib
    _, tok = tiny
    lm = _Scripted(tok, text)
    ex = Example("Where?\nAnswer:", f" {expected}", (expected,))
    scores, preds = tasks.generation_scores(lm, tok, [ex], "squad", prompts=[(1, 2, 3)], max_new_tokens=24,
                                            autocast=contextlib.nullcontext, progress=False)
    assert preds == [expected] and scores["exact_match"] == 100.0
    assert tok.eos_token_id in lm.stop_ids
    newline_tokens = [i for i in tok(text, add_special_tokens=False)["input_ids"] if "\n" in tok.decode([i])]
    assert all(i in lm.stop_ids for i in newline_tokens)
    assert not any("\n" in tok.decode([i]) for i in set(range(len(tok))) - tasks.newline_ids(tok))


def test_trainer_evaluates_whole_prompts_and_reports_what_it_left_out(tmp_path, tiny):
    from test_trainer import make_trainer
    t = make_trainer(tmp_path / "run", tiny, eval_max_length=40, max_new_tokens=8)
    assert all(len(e.prompt_ids) <= 32 for e in t.held_out.encoded)
    assert [tuple(tiny[1](ex.prompt, add_special_tokens=False)["input_ids"]) for ex in t.eval_examples] \
        == [e.prompt_ids for e in t.held_out.encoded]
    m = t.fit()
    assert m["held_out"] == {"n": len(t.eval_examples), "scanned": t.held_out.scanned,
                             "left_out": t.held_out.left_out, "max_prompt_tokens": 32}
