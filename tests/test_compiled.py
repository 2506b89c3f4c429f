"""Compiled decoder layers (priorlib.compiled): the same losses and gradients as eager mode, hooks still
applied, decoding untouched, and a run's identity independent of the switch.

conftest turns compilation off for the rest of the suite (PRIORLIB_COMPILE=0) to keep it fast; these
tests turn it back on. Tolerances: fp32 on the tiny model, where inductor's fused kernels reorder sums
only: losses within 1e-5 relative, gradients 1e-4.
"""
import pytest
import torch

from priorlib import arch
from priorlib.compiled import compiled_layers, enabled
from priorlib.config import TrainConfig
from priorlib.prompts import PromptedLM
from test_trainer import CFG, make_trainer


@pytest.fixture
def compile_on(monkeypatch):
    monkeypatch.setenv("PRIORLIB_COMPILE", "1")


def _batch(tok, n=3, T=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, tok.vocab_size - 1, (n, T), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, -3:] = ids[:, -3:]
    return ids, labels


def _loss_and_grads(lm, fn):
    for p in lm.parameters():
        p.grad = None
    s, n = fn()
    (s / n).backward()
    return float(s / n), {k: t.grad.clone() for k, t in lm.prompt_tensors().items()}


def test_soft_prompt_loss_and_gradient_match_eager(tiny, compile_on):
    model, tok = tiny
    torch.manual_seed(0)
    lm = PromptedLM.build(model, method="soft", n_tokens=4, soft_init=torch.randn(4, arch.d_model(model)))
    ids, labels = _batch(tok)
    ref, gref = _loss_and_grads(lm, lambda: lm.answer_loss(ids, labels))
    from torch._dynamo.utils import counters
    graphs = counters["stats"]["unique_graphs"]
    with compiled_layers(model):
        got, g = _loss_and_grads(lm, lambda: lm.answer_loss(ids, labels))
    assert counters["stats"]["unique_graphs"] > graphs  # dynamo really captured the layers
    # a batch of another length reuses the dynamic graph and still agrees
    ids2, labels2 = _batch(tok, n=2, T=17, seed=1)
    ref2, _ = _loss_and_grads(lm, lambda: lm.answer_loss(ids2, labels2))
    with compiled_layers(model):
        got2, _ = _loss_and_grads(lm, lambda: lm.answer_loss(ids2, labels2))
    print("compiled - eager:", got - ref, got2 - ref2, "batch 1 - batch 2:", ref - ref2)
    assert got == pytest.approx(ref, rel=1e-5) and got2 == pytest.approx(ref2, rel=1e-5)
    assert ref != pytest.approx(ref2, rel=1e-4)  # two different batches: the comparison could fail
    torch.testing.assert_close(g["soft"], gref["soft"], rtol=1e-4, atol=1e-6)


def test_deep_hooks_run_around_compiled_layers(tiny, compile_on):
    """Cached deep prompts (top layers only): the blocks enter through module hooks, outside the compiled
    forward; loss and block gradients equal eager mode, and the blocks matter (zeroing one changes it)."""
    model, tok = tiny
    torch.manual_seed(0)
    lm = PromptedLM.build(model, method="deep", n_tokens=4, deep_layers=(-2, -1), token_prompt=False)
    with torch.no_grad():
        for p in lm.parameters():
            p.normal_(0, 1.0)
    ids, labels = _batch(tok)
    states = lm.frozen_states(ids)
    k = lm.lower_layers_frozen_below()
    fn = lambda: lm.loss_from_hidden(lm.hidden_from_states(states), labels)  # noqa: E731
    ref, gref = _loss_and_grads(lm, fn)
    with compiled_layers(model, start=k):
        got, g = _loss_and_grads(lm, fn)
    assert got == pytest.approx(ref, rel=1e-5)
    for name in gref:
        assert float(gref[name].abs().sum()) > 0
        torch.testing.assert_close(g[name], gref[name], rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        lm.prompt_tensors()[f"deep.{k}"].zero_()
    with compiled_layers(model, start=k):
        zeroed, _ = _loss_and_grads(lm, fn)
    assert zeroed != pytest.approx(got, rel=1e-5)


def test_layers_are_plain_again_after_the_context_and_decoding_is_unchanged(tiny, compile_on):
    model, tok = tiny
    lm = PromptedLM.build(model, method="soft", n_tokens=4, soft_init=torch.randn(4, arch.d_model(model)))
    ids = _batch(tok, n=1)[0][0]
    before = lm.generate(ids, max_new_tokens=5)
    with pytest.raises(ZeroDivisionError):
        with compiled_layers(model):
            lm.answer_loss(*_batch(tok))
            1 / 0  # an error inside still restores the layers
    mods = list(arch.layers(model)) + [arch.final_norm(model)]
    assert not any("forward" in m.__dict__ for m in mods)
    assert lm.generate(ids, max_new_tokens=5) == before


def test_switch_and_identity(monkeypatch):
    monkeypatch.setenv("PRIORLIB_COMPILE", "0")
    assert enabled(True) is False
    monkeypatch.setenv("PRIORLIB_COMPILE", "1")
    assert enabled(True) is True and enabled(False) is False
    on, off = TrainConfig(**CFG), TrainConfig(**{**CFG, "compile": False})
    assert on.key() == off.key() and "compile" not in on.identity()
    with pytest.raises(ValueError, match="compile must be true or false"):
        TrainConfig(**{**CFG, "compile": "yes"})


def test_a_compiled_run_trains_like_an_eager_one(tmp_path, tiny, monkeypatch):
    """The trainer's compiled path: the same fp32 learning curve as eager, and metrics say which ran."""
    monkeypatch.setenv("PRIORLIB_COMPILE", "0")
    eager = make_trainer(tmp_path / "eager", tiny, steps=4, eval_every=2).fit()
    monkeypatch.setenv("PRIORLIB_COMPILE", "1")
    comp = make_trainer(tmp_path / "compiled", tiny, steps=4, eval_every=2).fit()
    assert (eager["compiled"], comp["compiled"]) == (False, True)
    from priorlib.checkpoint import read_jsonl
    le = [r["loss"] for r in read_jsonl(tmp_path / "eager" / "history.jsonl")]
    lc = [r["loss"] for r in read_jsonl(tmp_path / "compiled" / "history.jsonl")]
    assert lc == pytest.approx(le, rel=1e-5)
    assert eager["final"]["val_loss"] != pytest.approx(eager["initial"]["val_loss"], rel=1e-4)  # it trained
    assert comp["final"]["val_loss"] == pytest.approx(eager["final"]["val_loss"], rel=1e-4)
    rows = read_jsonl(tmp_path / "compiled" / "evals.jsonl")
    assert all(r["seconds"] > 0 for r in rows)  # every evaluation says what it cost
