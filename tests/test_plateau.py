"""The plateau rule: known answers, the trainer stopping by itself (tiny and real model), and resume."""
import json

import pytest

from priorlib.config import TrainConfig
from priorlib.trainer import Trainer, lr_at, plateau_reached
from test_trainer import CFG, KILLER, make_trainer, toy_examples


@pytest.mark.parametrize("losses, window, tol, expected", [
    ([2.0, 1.5, 1.2, 1.19, 1.195, 1.19], 3, 0.01, True),     # last 3 improve the best (1.2) by 0.8%
    ([2.0, 1.5, 1.2, 1.1, 1.195, 1.19], 3, 0.01, False),     # 1.1 is 8% better than 1.2
    ([2.0, 1.5, 1.2], 3, 0.01, False),                       # too few evaluations to judge
    ([2.0, 1.5, 1.2, 1.3], 3, 0.01, False),                  # window 3 needs 4 values: before = [2.0]
    ([1.0, 1.0, 1.0, 1.0], 3, 0.01, True),                   # flat
    ([1.0, 1.2, 1.3, 1.4], 3, 0.01, True),                   # getting worse is no improvement
    ([1.0, 0.995, 0.994, 0.993], 3, 0.005, False),           # 0.7% > 0.5%
    ([1.0, 0.995, 0.994, 0.993], 3, 0.01, True),
])
def test_plateau_rule_known_answers(losses, window, tol, expected):
    assert plateau_reached(losses, window, tol) is expected


def test_constant_schedule_and_its_guard():
    cfg = TrainConfig(**{**CFG, "steps": 10, "warmup_steps": 2, "lr": 1.0, "schedule": "constant"})
    assert [lr_at(s, cfg) for s in range(10)] == [0.5] + [1.0] * 9
    with pytest.raises(ValueError, match="stop_at_plateau needs schedule='constant'"):
        TrainConfig(**{**CFG, "stop_at_plateau": True})
    for bad in (0, 1, 1.5, -0.1, True):
        with pytest.raises(ValueError, match="plateau_tol"):
            TrainConfig(**{**CFG, "plateau_tol": bad})
    with pytest.raises(ValueError, match="plateau_window"):
        TrainConfig(**{**CFG, "plateau_window": 0})


PLATEAU = dict(schedule="constant", stop_at_plateau=True, steps=400, eval_every=4, checkpoint_every=8,
               plateau_window=3, plateau_tol=0.02, lr=5e-2)


def _losses(out):
    return [json.loads(line)["plateau_loss"] for line in (out / "evals.jsonl").read_text().splitlines()]


def test_tiny_run_stops_at_its_plateau_and_says_so(tmp_path, tiny):
    m = make_trainer(tmp_path / "run", tiny, **PLATEAU).fit()
    losses = _losses(tmp_path / "run")
    assert m["stopped_by"] == "plateau" and m["plateaued"] is True
    assert m["steps"] < m["step_cap"] == 400 and m["steps"] % 4 == 0
    assert len(losses) == m["steps"] // 4 + 1 == m["evaluations"]  # step 0, every 4 steps, the last is the final
    # the rule holds at the end and did not hold one evaluation earlier: it stopped at the first chance
    assert plateau_reached(losses, 3, 0.02) and not plateau_reached(losses[:-1], 3, 0.02)
    assert losses[-1] < losses[0]  # it learned something before flattening
    assert m["final"]["step"] == m["steps"]
    from priorlib.checkpoint import list_checkpoints
    assert list_checkpoints(tmp_path / "run")[-1][0] == m["steps"]  # the prompts it stopped with are saved


def test_a_capped_run_is_not_called_plateaued(tmp_path, tiny):
    m = make_trainer(tmp_path / "short", tiny, **{**PLATEAU, "steps": 8}).fit()
    assert m["stopped_by"] == "cap" and m["steps"] == 8 and m["plateaued"] is False
    linear = make_trainer(tmp_path / "linear", tiny, steps=8).fit()  # a decaying lr: not judged at all
    assert linear["plateaued"] is None


@pytest.mark.parametrize("kill_at", [6, "stop"])
def test_killed_plateau_run_resumes_to_the_same_stop(tmp_path, tiny, kill_at):
    import subprocess
    import sys
    from pathlib import Path
    straight = make_trainer(tmp_path / "straight", tiny, **PLATEAU).fit()
    at = straight["steps"] if kill_at == "stop" else kill_at  # "stop": killed after the final checkpoint's step
    code = KILLER.format(tests=str(Path(__file__).parent), kill_at=at, out=str(tmp_path / "killed"), over=PLATEAU)
    if kill_at == "stop":  # die after the last checkpoint is written, before metrics.json
        code = code.replace("def on_step(self, trainer, logs):\n        if logs[\"step\"] == {}:".format(at),
                            "def on_checkpoint(self, trainer, step, path):\n        if step == {}:".format(at))
        assert "on_checkpoint" in code
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == -9, res.stderr
    assert not (tmp_path / "killed" / "metrics.json").exists()
    resumed = make_trainer(tmp_path / "killed", tiny, resume=True, **PLATEAU).fit()
    assert (resumed["steps"], resumed["stopped_by"]) == (straight["steps"], "plateau")
    assert _losses(tmp_path / "killed") == _losses(tmp_path / "straight")
    assert resumed["final"]["val_loss"] == straight["final"]["val_loss"]


@pytest.mark.slow
def test_smollm2_run_stops_by_itself_at_a_plateau(tmp_path, smollm, real_precision):
    """The real model, a soft prompt at a constant lr: the run stops well before its cap and says why."""
    from priorlib import tasks
    model, tok = smollm
    cfg = TrainConfig(task="squad", prior="vocab-sample", lr=1e-2, schedule="constant", stop_at_plateau=True,
                      steps=400, warmup_steps=5, batch_size=4, max_length=96, eval_size=16, eval_every=5,
                      plateau_window=2, plateau_tol=0.02, eval_generate=False, checkpoint_every=50,
                      precision=real_precision)
    t = Trainer(cfg, tmp_path / "run", model=model, tokenizer=tok, progress=False,
                train_examples=tasks.examples("squad", "train", n=None)[:64])
    m = t.fit()
    losses = _losses(tmp_path / "run")
    print({"steps": m["steps"], "val_loss": [round(x, 3) for x in losses]})  # the figure, with -s
    assert m["stopped_by"] == "plateau" and m["plateaued"] is True and m["steps"] < 400
    assert plateau_reached(losses, 2, 0.02) and not plateau_reached(losses[:-1], 2, 0.02)
    assert min(losses) < losses[0] - 0.3  # it learned first: a plateau, not a run that never moved


def test_the_curve_is_the_held_out_sets_head_and_the_ends_use_all_of_it(tmp_path, tiny):
    import contextlib
    from priorlib import tasks
    t = make_trainer(tmp_path / "run", tiny, steps=8, eval_every=2, plateau_eval_size=3)
    t.fit()
    rows = [json.loads(line) for line in (tmp_path / "run" / "evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4, 6, 8]
    assert all("val_loss" not in r for r in rows[1:-1])  # periodic: the curve only
    assert all("val_loss" in r and "plateau_loss" in r for r in (rows[0], rows[-1]))
    args = (t.lm, t.held_out.encoded, 4, tiny[1].pad_token_id, contextlib.nullcontext)
    whole = tasks.validation_scores(*args)
    head = tasks.curve_scores(*args, curve=3)
    assert rows[-1]["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-6)  # the final prompts, all 8
    assert rows[-1]["plateau_loss"] == pytest.approx(head["plateau_loss"], rel=1e-6)  # the first 3
    assert rows[-1]["plateau_loss"] != pytest.approx(rows[-1]["val_loss"], rel=1e-3)


def test_the_stop_step_does_not_evaluate_the_curve_twice(tmp_path, tiny, monkeypatch):
    """At the stop, the final evaluation reuses the periodic pass's head and only adds the rest."""
    from priorlib import tasks
    sizes = []
    real = tasks.validation_totals
    monkeypatch.setattr(tasks, "validation_totals", lambda lm, enc, *a: sizes.append(len(enc)) or real(lm, enc, *a))
    m = make_trainer(tmp_path / "run", tiny, **PLATEAU, plateau_eval_size=3).fit()
    assert m["stopped_by"] == "plateau"
    periodic = m["steps"] // PLATEAU["eval_every"]  # every evaluation after step 0, the stop's included
    assert sizes.count(5) == 2 and sizes.count(3) == periodic + 1  # the rest at 0 and at the stop; heads once each
