"""Trainer: exact resume after SIGKILL, run-folder safety, frozen weights, config validation."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from priorlib.checkpoint import list_checkpoints, load_checkpoint
from priorlib.config import TrainConfig
from priorlib.data import Example
from priorlib.trainer import Trainer, lr_at

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def toy_examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        w = [WORDS[j] for j in torch.randint(len(WORDS), (6,), generator=g)]
        out.append(Example(prompt=" ".join(w) + "\nQuestion: which word is third?\nAnswer:", target=" " + w[2],
                           answers=(w[2],), meta={"id": str(i)}))
    return out


CFG = dict(model="tiny-random-llama", steps=8, batch_size=4, eval_size=8, eval_every=4, checkpoint_every=3,
           max_length=64, prior="isotropic", prior_params={"sigma": "0.5"}, precision="fp32", lr=5e-2,
           warmup_steps=2, eval_generate=False, n_tokens=4)


def make_trainer(out, tiny, resume=False, **over):
    model, tok = tiny
    cfg = TrainConfig(**{**CFG, **over})
    return Trainer(cfg, out, model=model, tokenizer=tok, progress=False, resume=resume,
                   train_examples=toy_examples(40, 0), eval_examples=toy_examples(8, 1))


KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_trainer import make_trainer
    from priorlib.models import load_model
    from priorlib.trainer import Callback
    class Kill(Callback):
        def on_step(self, trainer, logs):
            if logs["step"] == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)
    t = make_trainer({out!r}, load_model("tiny-random-llama"), **{over!r})
    t.callbacks.append(Kill())
    t.fit()
""")


@pytest.mark.parametrize("over", [{}, {"method": "deep", "deep_layers": (-2, -1)}])
def test_killed_run_resumes_to_bitwise_same_prompts(tmp_path, tiny, over):
    straight = make_trainer(tmp_path / "straight", tiny, **over)
    straight.fit()
    out = tmp_path / "killed"
    code = KILLER.format(tests=os.path.dirname(__file__), kill_at=5, out=str(out), over=over)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert [s for s, _ in list_checkpoints(out)] == [0, 3]  # killed after step 5, last checkpoint at 3
    assert not (out / "metrics.json").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        make_trainer(out, tiny, **over)
    make_trainer(out, tiny, resume=True, **over).fit()
    a = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1][1])
    b = load_checkpoint(list_checkpoints(out)[-1][1])
    assert a["step"] == b["step"] == 8
    for k in a["prompts"]:
        assert torch.equal(a["prompts"][k], b["prompts"][k]), k
        assert torch.equal(a["optim"][k]["exp_avg_sq"], b["optim"][k]["exp_avg_sq"]), k
    hist = [json.loads(r) for r in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == list(range(1, 9))
    ref = [json.loads(r)["loss"] for r in (tmp_path / "straight" / "history.jsonl").read_text().splitlines()]
    assert [h["loss"] for h in hist] == ref
    # training moved the prompt away from the prior sample and lowered the loss
    start = load_checkpoint(list_checkpoints(out)[0][1])["prompts"]
    assert not torch.equal(start["soft"], b["prompts"]["soft"])


def test_training_lowers_loss_and_leaves_model_untouched(tmp_path, tiny):
    model, _ = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    t = make_trainer(tmp_path / "r", tiny, steps=30, eval_every=10, checkpoint_every=10)
    m = t.fit()
    # a random 4-layer model is nearly uniform over 49k tokens (loss ~ ln 49152 = 10.8); the prompt still
    # moves it measurably (10.77 -> 10.69 seen); the real-model test checks a large gain
    assert m["final"]["val_loss"] < m["initial"]["val_loss"] - 0.04
    for when in ("initial", "final"):  # teacher-forced answer-token accuracy is recorded with the loss
        assert 0.0 <= m[when]["val_token_accuracy"] <= 100.0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # a finished run is reused, not recomputed
    again = make_trainer(tmp_path / "r", tiny, steps=30, eval_every=10, checkpoint_every=10)
    assert again.fit() == m


def test_out_dir_holding_another_run_is_refused(tmp_path, tiny):
    make_trainer(tmp_path / "r", tiny, steps=2, checkpoint_every=1).fit()
    with pytest.raises(FileExistsError, match="another run"):
        make_trainer(tmp_path / "r", tiny, steps=3)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        make_trainer(tmp_path / "junk", tiny)


@pytest.mark.parametrize("bad,match", [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"n_tokens": -1}, "n_tokens"),
    ({"lr": 0}, "lr must be positive"),
    ({"prior": "nope"}, "unknown prior"),
    ({"prior": "isotropic", "prior_params": {"sigma": "-1"}}, "sigma"),
    ({"prior": "isotropic", "prior_params": {"bogus": "1"}}, "bogus"),
    ({"model": "gpt-17"}, "unknown model"),
    ({"task": "chess"}, "task must be one of"),
    ({"deep_mode": "sideways"}, "deep_mode"),
    ({"prior": "interpolation"}, "mixes two activation spaces"),
])
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**CFG, **bad})


def test_lr_schedule_warms_up_and_decays_to_zero():
    cfg = TrainConfig(**{**CFG, "steps": 10, "warmup_steps": 2, "lr": 1.0})
    assert [round(lr_at(s, cfg), 4) for s in range(10)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]


def test_deep_only_training_with_frozen_cache_matches_uncached(tmp_path, tiny, monkeypatch):
    """The trainer's cached path (deep prompts, no token prompt) ends where full backprop ends."""
    over = dict(method="deep", deep_layers=(-2, -1), token_prompt=False, steps=6, checkpoint_every=6)
    make_trainer(tmp_path / "cached", tiny, **over).fit()
    from priorlib.prompts import PromptedLM
    monkeypatch.setattr(PromptedLM, "lower_layers_frozen_below", lambda self: 0)
    make_trainer(tmp_path / "full", tiny, **over).fit()
    a = load_checkpoint(list_checkpoints(tmp_path / "cached")[-1][1])["prompts"]
    b = load_checkpoint(list_checkpoints(tmp_path / "full")[-1][1])["prompts"]
    assert set(a) == {"deep.2", "deep.3"}
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)


@pytest.mark.parametrize("prior,params", [
    ("isotropic", {"sigma": "0.02"}), ("xavier", {}), ("fitted-gaussian", {}), ("exclusion", {"c": "5"}),
    ("interpolation", {"alpha": "uniform"}), ("vae", {"epochs": "2"}), ("vocab-sample", {}),
    ("text", {"text": "Answer the question"}), ("low-density", {}),
])
def test_every_prior_trains_from_the_cli_config(tmp_path, tiny, prior, params):
    """All nine priors are selectable by name with string params and give a run (deep prompts, so the
    interpolation prior has its activation space)."""
    over = dict(prior=prior, prior_params=params, steps=1, checkpoint_every=1, method="deep", deep_layers=(-1,),
                reference_texts=8)
    if prior == "interpolation":  # it mixes two activation spaces: the deep blocks' prior
        over.update(prior="isotropic", prior_params={}, deep_prior=prior, deep_prior_params=params)
    from priorlib.initial import initial_prompts
    t = make_trainer(tmp_path / prior, tiny, **over)
    texts = [e.prompt for e in toy_examples(8, 3)]
    soft, deep, info = initial_prompts(t.config, t.model, t.tok, texts_fn=lambda domain: texts)
    assert soft.shape == (4, 64) and deep[3].shape == (4, 64)
    assert torch.isfinite(soft).all() and torch.isfinite(deep[3]).all()
    t._initial = (soft, deep, info)
    t.fit()
    assert len(list_checkpoints(tmp_path / prior)) == 2


def test_activation_reference_cache_is_keyed_by_attention_kernel(tmp_path, monkeypatch, tiny, tiny_eager):
    """bf16 activations differ in the last bits between sdpa and eager: each gets its own cached fit."""
    from priorlib.initial import activation_reference
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path))
    monkeypatch.delenv("PRIORLIB_NO_CACHE", raising=False)
    texts = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France."]
    for model, _ in (tiny, tiny_eager, tiny):
        activation_reference(model, tiny[1], texts, "layers.1.resid_pre", model_name="tiny-random-llama",
                             max_length=32)
    assert len(list(tmp_path.glob("activation-reference-*.safetensors"))) == 2
