"""The README's Python quick-start, run as written on the tiny model (only the model name and the step
count change), and the bring-your-own-model-and-task path it documents."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_code() -> str:
    text = README.read_text()
    section = text.split("## Python quick-start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quickstart_runs_as_written(tmp_path):
    code = quickstart_code()
    assert 'model = "smollm2-135m"' in code and "steps=100" in code
    code = code.replace('model = "smollm2-135m"', 'model = "tiny-random-llama"').replace("steps=100", "steps=2")
    code += "\nimport json\nprint('RESULT', json.dumps({'final': run.metrics['final'], 'shape': list(run.prompts()['soft'].shape),"
    code += " 'dir': str(run.dir)}))\n"
    env = {**os.environ, "PRIORLIB_RUNS": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.split("RESULT ", 1)[1])
    assert res["shape"] == [20, 64]                     # 20 prompt vectors of the tiny model's width
    assert set(res["final"]) >= {"val_loss", "exact_match"}  # the task's own scorer was used
    assert 0.0 <= res["final"]["exact_match"] <= 100.0
    assert Path(res["dir"]).parent == tmp_path / "runs"  # into the run store


def _save_tiny(folder: Path):
    from priorlib.models import MODELS
    model, tok = MODELS["tiny-random-llama"].loader()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model


def test_user_model_and_user_task(tmp_path):
    import priorlib
    from priorlib import Example, TaskSpec, TrainConfig
    from priorlib.tasks import TASKS

    original = _save_tiny(tmp_path / "my-llama")
    priorlib.register_model(priorlib.ModelSpec.hugging_face("my-llama", tmp_path / "my-llama"))
    model, tok = priorlib.load_model("my-llama")
    assert torch.equal(model.get_input_embeddings().weight, original.get_input_embeddings().weight)

    words = ["apple", "river", "stone", "cloud", "green", "music", "paper", "light", "sugar", "tiger"]
    pairs = [Example(f"Repeat the word: {w}\nAnswer:", f" {w}", (w,)) for w in words]
    scored = []

    def score(answer, ex):
        scored.append(answer)
        return {"starts_right": float(answer[:1] == ex.answers[0][:1])}

    try:
        priorlib.register_task(TaskSpec("repeat", examples=lambda split, n: pairs[:6] if split == "train" else pairs[6:],
                                        score=score))
        cfg = TrainConfig(model="my-llama", task="repeat", prior="fitted-gaussian", lr=1e-2, steps=3, batch_size=2,
                          eval_size=4, eval_every=3, max_new_tokens=3, warmup_steps=1)
        run = priorlib.train(cfg, root=tmp_path / "store", model=model, tokenizer=tok, progress=False)
        final = run.metrics["final"]
        assert "starts_right" in final and "f1" not in final and "accuracy" not in final
        assert len(scored) == 4                              # the final prompt decodes the 4 held-out examples
        assert "starts_right" not in run.metrics["initial"]  # the untrained one is not decoded (generate_initial)
        assert run.prompts()["soft"].shape == (20, 64)
        assert run.dir.name == cfg.key()

        # the same config on other examples is another run, keyed by the examples as well
        other = priorlib.train(cfg, root=tmp_path / "store", model=model, tokenizer=tok, progress=False,
                               train_examples=pairs[1:7], eval_examples=pairs[7:])
        assert other.dir != run.dir and other.dir.name.startswith(cfg.key() + "-")
    finally:
        TASKS.pop("repeat", None)
        priorlib.models.MODELS.pop("my-llama", None)


def test_unknown_task_fails_in_one_line():
    from priorlib import TrainConfig
    with pytest.raises(ValueError, match=r"task must be one of .*'nope'"):
        TrainConfig(task="nope")
