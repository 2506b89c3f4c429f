"""The fused final evaluation (``fused_eval``): one prefill gives the held-out answers' teacher-forced
scores and the greedy continuations. Both must equal what the two separate passes give: the scores those
of :meth:`PromptedLM.answer_scores` on ``[prompt + answer]``, the continuations those of
:meth:`PromptedLM.generate_batch`, for soft and deep prompts, with Gemma's BOS and sliding window."""
import json
from pathlib import Path

import pytest
import torch

from priorlib import TrainConfig
from priorlib.batching import Encoded, bos_ids, collate
from priorlib.prompts import PromptedLM

FIXTURES = ["tiny_eager", "tiny_gemma_eager"]
PAIRS = [("Hello there, how are", " you today"), ("The quick brown fox jumps over the lazy dog and then", " sleeps"),
         ("One two", " three four five six"), ("A long question about the river that runs through the old town "
                                                "and the bridge over it, which was built", " in 1820"),
         # past the tiny Gemma's 128-position sliding window, beside short rows
         (" ".join(f"word{i}" for i in range(70)), " done")]
BUILDS = {"soft": dict(method="soft"), "deep-cut": dict(method="deep", deep_mode="cut", deep_layers=(0, -1)),
          "deep-carry": dict(method="deep", deep_mode="carry", deep_layers=(-2, -1))}


def _randomise(lm, seed=0, std=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lm.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def _encoded(tok):
    return [Encoded(tuple(tok(p, add_special_tokens=False)["input_ids"]),
                    tuple(tok(a, add_special_tokens=False)["input_ids"])) for p, a in PAIRS]


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("build", list(BUILDS))
def test_one_prefill_scores_and_decodes_like_the_two_passes(fixture, build, request):
    model, tok = request.getfixturevalue(fixture)
    assert len(tok(PAIRS[-1][0], add_special_tokens=False)["input_ids"]) > 128  # the window is passed
    lm = PromptedLM.build(model, n_tokens=3, bos_ids=bos_ids(tok), **BUILDS[build])
    _randomise(lm)
    enc = _encoded(tok)
    ids, labels = collate(enc, tok.pad_token_id)
    loss, n, right = lm.answer_scores(ids, labels)
    prompts = [torch.tensor(e.prompt_ids) for e in enc]
    (f_loss, f_n, f_right), outs = lm.score_and_generate(prompts, [torch.tensor(e.target_ids) for e in enc],
                                                         max_new_tokens=6, pad_id=tok.pad_token_id)
    assert f_n == n == sum(len(e.target_ids) for e in enc)
    assert f_loss == pytest.approx(loss, rel=1e-5)
    assert f_right == right
    assert outs == lm.generate_batch(prompts, 6, pad_id=tok.pad_token_id)
    assert all(len(o) == 6 for o in outs)  # no stop ids: every row decoded to the limit


@pytest.mark.parametrize("fixture", FIXTURES)
def test_scoring_alone_decodes_nothing(fixture, request):
    model, tok = request.getfixturevalue(fixture)
    lm = PromptedLM.build(model, method="soft", n_tokens=3, bos_ids=bos_ids(tok))
    _randomise(lm)
    enc = _encoded(tok)
    scores, outs = lm.score_and_generate([torch.tensor(e.prompt_ids) for e in enc],
                                         [torch.tensor(e.target_ids) for e in enc], 0, pad_id=tok.pad_token_id)
    assert outs == [[]] * len(enc)
    assert scores[0] == pytest.approx(lm.answer_scores(*collate(enc, tok.pad_token_id))[0], rel=1e-5)


def test_the_new_fields_leave_earlier_run_keys_alone():
    """Runs made before ``fused_eval`` existed keep their keys (the bank's two engine-3 runs); setting
    it makes another run."""
    bank = Path(__file__).resolve().parents[1] / "evidence" / "runs"
    folders = sorted(p for p in bank.iterdir() if (p / "config.json").exists()) if bank.is_dir() else []
    assert folders, "the bank holds runs to check against"
    for folder in folders:
        saved = json.loads((folder / "config.json").read_text())
        assert TrainConfig.from_dict(saved["config"]).key() == folder.name
    cfg = TrainConfig(task="squad")
    assert "fused_eval" not in cfg.identity()
    assert TrainConfig(task="squad", fused_eval=True).key() != cfg.key()


def test_a_fused_run_scores_like_a_plain_one(tiny, tmp_path):
    """The same run trained twice, evaluated the two ways: the same prompts (evaluation does not touch
    training), final losses equal up to rounding, the same answers."""
    from priorlib.trainer import Trainer
    model, tok = tiny
    common = dict(task="squad", model="tiny-random-llama", method="soft", n_tokens=4, steps=4, batch_size=4,
                  eval_size=12, plateau_eval_size=4, eval_every=2, checkpoint_every=2, max_length=96,
                  max_new_tokens=4, n_train=32, precision="fp32", lr=5e-2, compile=False)
    runs = {}
    for name, extra in {"plain": {}, "fused": dict(fused_eval=True)}.items():
        cfg = TrainConfig(**common, **extra)
        runs[name] = Trainer(cfg, tmp_path / name, model=model, tokenizer=tok, progress=False).fit()
    plain, fused = runs["plain"], runs["fused"]
    assert fused["final"]["val_loss"] == pytest.approx(plain["final"]["val_loss"], rel=1e-5)
    assert fused["final"]["plateau_loss"] == pytest.approx(plain["final"]["plateau_loss"], rel=1e-6)
    assert fused["final"]["examples"] == plain["final"]["examples"]
    assert fused["final"]["f1"] == pytest.approx(plain["final"]["f1"])
    assert fused["initial"]["val_loss"] == pytest.approx(plain["initial"]["val_loss"], rel=1e-5)
    assert fused["initial"]["plateau_loss"] == pytest.approx(plain["initial"]["plateau_loss"], rel=1e-6)
    assert fused["final"]["generation_seconds"] > 0
