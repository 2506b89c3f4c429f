"""The run store: training runs keyed by a hash of their full configuration.

    run = runstore.train(TrainConfig(...), model=model, tokenizer=tok)   # reuses a finished run
    run.metrics["final"]["f1"]; run.history(); run.checkpoints()

Rebuilding the book therefore recomputes only what changed; an interrupted run resumes from its last
checkpoint. The root is ``$PRIORLIB_RUNS`` or ``<cache>/runs``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import list_checkpoints, load_checkpoint, read_jsonl
from .config import TrainConfig
from .models import cache_dir


def store_root(root: str | Path | None = None) -> Path:
    root = Path(root or os.environ.get("PRIORLIB_RUNS") or cache_dir() / "runs")
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Run:
    dir: Path
    config: TrainConfig

    @property
    def metrics(self) -> dict:
        from .trainer import read_json_file
        return read_json_file(self.dir / "metrics.json", "metrics file")

    def _jsonl(self, name: str) -> list[dict]:
        return read_jsonl(self.dir / name)  # a bad row: one line naming the file and line

    def history(self):
        import pandas as pd
        return pd.DataFrame(self._jsonl("history.jsonl"))

    def evals(self):
        import pandas as pd
        return pd.DataFrame([{k: v for k, v in e.items() if k != "examples"} for e in self._jsonl("evals.jsonl")])

    def checkpoints(self) -> list[tuple[int, dict[str, torch.Tensor]]]:
        """``[(step, {"soft": [n, d], "deep.{k}": [n, d]})]`` from the prior sample (step 0) to the end."""
        return [(s, load_checkpoint(p)["prompts"]) for s, p in list_checkpoints(self.dir)]

    def prompts(self, step: int | None = None) -> dict[str, torch.Tensor]:
        ck = self.checkpoints()
        return ck[-1][1] if step is None else dict(ck)[step]

    def steps_to(self, target_loss: float, window: int = 5) -> int | None:
        """First step at which the running mean of the training loss is at or below ``target_loss``."""
        h = self.history()
        if h.empty:
            return None
        smooth = h["loss"].rolling(window, min_periods=1).mean()
        hit = h["step"][smooth <= target_loss]
        return int(hit.iloc[0]) if len(hit) else None


def examples_key(*example_lists) -> str:
    """A short hash of example lists (prompt, target, answers), so runs on your own data get their own
    store key: the same config trained on other examples is another run."""
    h = hashlib.sha256()
    for exs in example_lists:
        h.update(b"\x00list")
        for ex in exs or ():
            h.update(json.dumps([ex.prompt, ex.target, list(ex.answers), ex.keep_span, ex.cut_end]).encode())
    return h.hexdigest()[:12]


def train(config: TrainConfig, *, out: str | Path | None = None, root=None, model=None, tokenizer=None,
          train_examples=None, eval_examples=None, progress: bool = True, wait: bool | float = True, **kw) -> Run:
    """Train ``config`` (or reuse the finished run) and return it.

    The run lives in ``out`` when given, else in the run store under the config's key (plus a hash of
    ``train_examples``/``eval_examples`` when you pass your own). ``model``/``tokenizer``: an already
    loaded model (else ``config.model`` is loaded from the registry). The run resumes if it was
    interrupted, and its folder is locked while it trains: a second process training the same key waits
    (``wait=True``, the default; a number: at most that many seconds; ``False``: fail at once) and then
    reuses the finished run, so the history is never written twice."""
    from .trainer import Trainer
    if out is None:
        key = config.key()
        if train_examples is not None or eval_examples is not None:
            key += "-" + examples_key(train_examples, eval_examples)
        out = store_root(root) / key
    Trainer(config, out, model=model, tokenizer=tokenizer, resume="auto", progress=progress, wait=wait,
            train_examples=train_examples, eval_examples=eval_examples, **kw).fit()
    return Run(Path(out), config)
