"""Checkpoints: safetensors only (never pickle), written atomically (temp file + rename).

One file per checkpoint, ``checkpoints/step_{step:06d}.safetensors``, holding

- ``prompt/{name}``              the prompt tensors (``soft``, ``deep.{layer}``)
- ``optim/{name}/{state}``       AdamW's ``exp_avg``, ``exp_avg_sq``, ``step`` per prompt tensor
- ``rng/torch``                  the CPU generator state (uint8)

and the step in the metadata. Data order is a pure function of (seed, step), so nothing else is needed
to resume a run exactly.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open

FORMAT = "priorlib-checkpoint-1"
_NAME = re.compile(r"^step_(\d{6,})\.safetensors$")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}.safetensors"


def save_checkpoint(run_dir: Path, step: int, prompts: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer | None = None, extra: dict | None = None) -> Path:
    tensors = {f"prompt/{k}": v.detach().float().cpu().contiguous() for k, v in prompts.items()}
    if optimizer is not None:
        names = {id(p): k for k, p in prompts.items()}
        for p, state in optimizer.state.items():
            for s, value in state.items():
                tensors[f"optim/{names[id(p)]}/{s}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    meta = {"format": FORMAT, "step": str(step), "extra": json.dumps(extra or {})}
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)  # a reader never sees a half-written checkpoint
    return path


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = Path(run_dir) / "checkpoints"
    if not folder.exists():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def load_checkpoint(path: Path) -> dict:
    """``{"step", "prompts", "optim", "rng", "extra"}`` from one checkpoint file."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({err})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a priorlib checkpoint (format {meta.get('format')!r})")
    out = {"step": int(meta["step"]), "prompts": {}, "optim": {}, "rng": None,
           "extra": json.loads(meta.get("extra", "{}"))}
    for k, v in tensors.items():
        kind, _, rest = k.partition("/")
        if kind == "prompt":
            out["prompts"][rest] = v
        elif kind == "optim":
            name, _, state = rest.rpartition("/")
            out["optim"].setdefault(name, {})[state] = v
        elif k == "rng/torch":
            out["rng"] = v
    return out


def restore_optimizer(optimizer: torch.optim.Optimizer, prompts: dict[str, torch.Tensor], optim: dict) -> None:
    for name, p in prompts.items():
        if name in optim:
            optimizer.state[p] = {k: v.clone() for k, v in optim[name].items()}
