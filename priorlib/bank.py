"""The evidence bank: finished runs kept read-only and small, found by their run-store key.

    from priorlib import bank
    path = bank.export(run, "evidence", provenance={"commit": "ab12…", "dirty": False})
    hit = bank.find(config, ["evidence"])      # a BankRun (reads like a Run) or None
    [e.key for e in bank.entries("evidence") if e.stale]

A bank is a folder; each run is ``<bank>/runs/<key>/`` holding

- ``config.json``, ``history.jsonl``, ``evals.jsonl``, ``metrics.json``: the run's own files, copied;
- ``frames.safetensors``: the prior sample (step 0) and the final prompts in float32, and up to
  ``frames`` checkpoints between them in float16 for the scrubber; no optimizer state, no RNG state;
- ``manifest.json``: engine version, the caller's provenance (commit, clean tree), machine (its CPU model too), torch
  version, training wall time, whether the run plateaued, and the folder's size.

A run is exported into a temporary folder and renamed into place, so a reader (or a kill) never sees a
half-written run; a run already in the bank is left alone. A run whose identity holds another engine
version than this code's (:data:`priorlib.config.ENGINE_VERSION`) is *stale*: its key can no longer be
asked for, and :func:`entries` reports it.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .checkpoint import list_checkpoints, load_checkpoint
from .config import ENGINE_VERSION, TrainConfig
from .hardware import cpu_model
from .runstore import Run

FORMAT = "priorlib-bank-1"
COPIED = ("config.json", "history.jsonl", "evals.jsonl", "metrics.json")
DEFAULT_FRAMES = 8

__all__ = ["BankRun", "Entry", "export", "find", "entries", "frame_steps", "FORMAT"]


def frame_steps(steps: list[int], frames: int = DEFAULT_FRAMES) -> list[int]:
    """The checkpoint steps a bank keeps: the first and the last, and ``frames`` of those between, evenly
    spread from the first of them to the last of them.

        frame_steps([0, 50, 100, 150, 200], frames=2)   # [0, 50, 150, 200]
    """
    if len(steps) <= frames + 2:
        return list(steps)
    inner = steps[1:-1]
    picks = sorted({inner[round(i * (len(inner) - 1) / max(1, frames - 1))] for i in range(frames)})
    return [steps[0], *picks, steps[-1]]


def _bank_runs(bank: str | Path) -> Path:
    return Path(bank) / "runs"


def export(run: Run, bank: str | Path, *, frames: int = DEFAULT_FRAMES, provenance: dict | None = None) -> Path:
    """Copy the finished ``run`` into ``bank`` (atomically; a run already there is kept) and return its folder."""
    src = Path(run.dir)
    if not (src / "metrics.json").exists():
        raise ValueError(f"{src}: the run has not finished (no metrics.json); only finished runs go into a bank")
    key = src.name
    dest = _bank_runs(bank) / key
    if (dest / "manifest.json").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{key}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name in COPIED:
            if (src / name).exists():
                shutil.copyfile(src / name, tmp / name)
        ckpts = list_checkpoints(src)
        keep = set(frame_steps([s for s, _ in ckpts], frames))
        tensors = {}
        for step, path in ckpts:
            if step not in keep:
                continue
            exact = step in (ckpts[0][0], ckpts[-1][0])  # the prior sample and the result: float32, bitwise
            for name, t in load_checkpoint(path)["prompts"].items():
                tensors[f"step/{step}/{name}"] = t.float().contiguous() if exact else t.half().contiguous()
        save_file(tensors, str(tmp / "frames.safetensors"), metadata={"format": FORMAT})
        metrics = json.loads((src / "metrics.json").read_text())
        history = [json.loads(line) for line in (src / "history.jsonl").read_text().splitlines() if line.strip()] \
            if (src / "history.jsonl").exists() else []
        manifest = {"format": FORMAT, "key": key, "engine": ENGINE_VERSION, **(provenance or {}),
                    "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                                "cpu": cpu_model(), "cpus": os.cpu_count()},
                    "torch": torch.__version__, "train_seconds": sum(float(h.get("seconds", 0)) for h in history),
                    "plateaued": metrics.get("plateaued"), "steps": metrics.get("steps"),
                    "frames": sorted(keep)}
        manifest["bytes"] = sum(p.stat().st_size for p in tmp.iterdir())
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, allow_nan=False))
        try:
            os.replace(tmp, dest)
        except OSError:  # another writer put it there first: theirs stays
            if not (dest / "manifest.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@dataclass
class BankRun(Run):
    """A run read from a bank: ``metrics``, ``history()`` and ``evals()`` as a :class:`Run`; its
    ``checkpoints()`` are the kept frames (float16 ones upcast), the first and last exact."""

    def checkpoints(self) -> list[tuple[int, dict[str, torch.Tensor]]]:
        path = self.dir / "frames.safetensors"
        out: dict[int, dict[str, torch.Tensor]] = {}
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("format") != FORMAT:
                    raise ValueError(f"{path}: not a priorlib bank file")
                for k in f.keys():
                    _, step, name = k.split("/", 2)
                    out.setdefault(int(step), {})[name] = f.get_tensor(k).float()
        except ValueError:
            raise
        except Exception as err:
            raise ValueError(f"{path}: not a readable bank file ({err})") from None
        return sorted(out.items())

    @property
    def manifest(self) -> dict:
        return json.loads((self.dir / "manifest.json").read_text())


def find(config: TrainConfig, banks) -> BankRun | None:
    """``config``'s run in the first bank that holds it, else ``None``. A folder whose config differs from
    ``config`` (a corrupted or hand-edited bank) is an error naming it, never a silent hit."""
    key = config.key()
    for bank in banks or ():
        folder = _bank_runs(bank) / key
        if not (folder / "manifest.json").exists():
            continue
        stored = json.loads((folder / "config.json").read_text())["identity"]
        if stored != json.loads(json.dumps(config.identity())):
            raise ValueError(f"{folder}: its config.json is not the run of key {key}; restore the bank from git")
        return BankRun(folder, config)
    return None


@dataclass(frozen=True)
class Entry:
    """One run in a bank, as :func:`entries` lists it."""
    key: str
    engine: int
    stale: bool
    plateaued: bool | None
    train_seconds: float
    bytes: int
    identity: dict


def entries(bank: str | Path) -> list[Entry]:
    """Every run in ``bank``, stale ones (another engine version) flagged."""
    out = []
    root = _bank_runs(bank)
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if folder.name.startswith(".") or not (folder / "manifest.json").exists():
            continue
        man = json.loads((folder / "manifest.json").read_text())
        identity = json.loads((folder / "config.json").read_text())["identity"]
        engine = int(identity.get("engine", 1))
        out.append(Entry(folder.name, engine, engine != ENGINE_VERSION, man.get("plateaued"),
                         float(man.get("train_seconds", 0.0)), int(man.get("bytes", 0)), identity))
    return out
