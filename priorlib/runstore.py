"""The run store: training runs keyed by a hash of their full configuration.

    run = runstore.train(TrainConfig(...), model=model, tokenizer=tok)   # reuses a finished run
    run.metrics["final"]["f1"]; run.history(); run.checkpoints()

Rebuilding the book therefore recomputes only what changed; an interrupted run resumes from its last
checkpoint. The root is ``$PRIORLIB_RUNS`` or ``<cache>/runs``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import list_checkpoints, load_checkpoint
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
        return json.loads((self.dir / "metrics.json").read_text())

    def _jsonl(self, name: str) -> list[dict]:
        path = self.dir / name
        return [json.loads(r) for r in path.read_text().splitlines() if r.strip()] if path.exists() else []

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


def train(config: TrainConfig, *, root=None, model=None, tokenizer=None, progress: bool = True, **kw) -> Run:
    from .trainer import Trainer
    out = store_root(root) / config.key()
    Trainer(config, out, model=model, tokenizer=tokenizer, resume=True, progress=progress, **kw).fit()
    return Run(out, config)
