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
ADAMW_STATE = ("exp_avg", "exp_avg_sq", "step")
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


def _fail(path: Path, what: str):
    raise ValueError(one_line(f"{path}: {what}"))


def _finite(path: Path, key: str, v: torch.Tensor) -> None:
    if not torch.isfinite(v).all():
        _fail(path, f"{key} holds {int((~torch.isfinite(v)).sum())} non-finite value(s)")


def load_checkpoint(path: Path, *, expect: dict[str, tuple[int, ...]] | None = None,
                    max_step: int | None = None) -> dict:
    """``{"step", "prompts", "optim", "rng", "extra"}`` from one checkpoint file, verified.

    Every problem is a one-line ``ValueError`` naming the file: unreadable bytes, a foreign format, step
    metadata that is missing, not an integer, not the step in the file name or above ``max_step``; prompt
    tensors that are not float32 ``[n, d]`` and finite (with ``expect``: exactly those names and shapes);
    AdamW state whose tensors do not match their prompt (shape, dtype, finiteness, its ``step`` the
    checkpoint's); a missing or malformed RNG state.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types (SafetensorError), or OSError
        raise ValueError(one_line(f"{path}: not a readable safetensors checkpoint ({err})")) from None
    if meta.get("format") != FORMAT:
        _fail(path, f"not a priorlib checkpoint (format {meta.get('format')!r})")
    try:
        step = int(meta["step"])
    except (KeyError, ValueError):
        _fail(path, f"step metadata {meta.get('step')!r} is not an integer")
    m = _NAME.match(path.name)
    if step < 0 or (m and int(m.group(1)) != step):
        _fail(path, f"step metadata {step} does not match the file name")
    if max_step is not None and step > max_step:
        _fail(path, f"step metadata {step} is beyond the run's {max_step} steps")
    try:
        extra = json.loads(meta.get("extra", "{}"))
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        _fail(path, "its 'extra' metadata is not a JSON object")
    out = {"step": step, "prompts": {}, "optim": {}, "rng": None, "extra": extra}
    for k, v in tensors.items():
        kind, _, rest = k.partition("/")
        if kind == "prompt" and rest:
            out["prompts"][rest] = v
        elif kind == "optim" and rest.count("/") >= 1:
            name, _, state = rest.rpartition("/")
            out["optim"].setdefault(name, {})[state] = v
        elif k == "rng/torch":
            out["rng"] = v
        else:
            _fail(path, f"unexpected tensor {k!r}")
    prompts = out["prompts"]
    if not prompts:
        _fail(path, "holds no prompt tensors (prompt/...)")
    if expect is not None and set(prompts) != set(expect):
        missing, extra_keys = sorted(set(expect) - set(prompts)), sorted(set(prompts) - set(expect))
        _fail(path, "prompt tensors do not match this run: "
              + "; ".join(x for x in (missing and f"missing {', '.join('prompt/' + n for n in missing)}",
                                      extra_keys and f"unexpected {', '.join('prompt/' + n for n in extra_keys)}")
                          if x))
    for name, v in prompts.items():
        key = f"prompt/{name}"
        if v.dtype != torch.float32:
            _fail(path, f"{key} is {str(v.dtype).replace('torch.', '')}, expected float32")
        if v.ndim != 2 or (expect is not None and tuple(v.shape) != tuple(expect[name])):
            want = tuple(expect[name]) if expect is not None else "[n, d]"
            _fail(path, f"{key} has shape {tuple(v.shape)}, expected {want}")
        _finite(path, key, v)
    unknown = sorted(set(out["optim"]) - set(prompts))
    if unknown:
        _fail(path, f"optimizer state for unknown prompt tensor(s) {', '.join(unknown)}")
    if step > 0:
        for name, v in prompts.items():
            state = out["optim"].get(name)
            if state is None or set(state) != set(ADAMW_STATE):
                _fail(path, f"optimizer state of {name} must hold {', '.join(ADAMW_STATE)}, "
                      f"got {sorted(state or {})}")
            for s in ("exp_avg", "exp_avg_sq"):
                t = state[s]
                if t.dtype != torch.float32 or t.shape != v.shape:
                    _fail(path, f"optim/{name}/{s} is {str(t.dtype).replace('torch.', '')} {tuple(t.shape)}, "
                          f"expected float32 {tuple(v.shape)}")
                _finite(path, f"optim/{name}/{s}", t)
            if bool((state["exp_avg_sq"] < 0).any()):
                _fail(path, f"optim/{name}/exp_avg_sq holds negative values")
            t = state["step"]
            if t.numel() != 1 or not t.dtype.is_floating_point or float(t) != step:
                _fail(path, f"optim/{name}/step is {t.flatten()[:3].tolist()}, expected the checkpoint's step {step}")
    elif out["optim"]:
        _fail(path, "the step-0 checkpoint (the prior sample) must not hold optimizer state")
    rng = out["rng"]
    if rng is None:
        _fail(path, "holds no RNG state (rng/torch)")
    if rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
        _fail(path, f"rng/torch is {str(rng.dtype).replace('torch.', '')} {tuple(rng.shape)}, "
              f"expected uint8 {tuple(torch.get_rng_state().shape)}")
    try:
        torch.Generator().set_state(rng)
    except (RuntimeError, ValueError) as err:
        _fail(path, f"rng/torch is not a valid generator state ({err})")
    return out


def restore_optimizer(optimizer: torch.optim.Optimizer, prompts: dict[str, torch.Tensor], optim: dict) -> None:
    for name, p in prompts.items():
        if name in optim:
            optimizer.state[p] = {k: v.clone() for k, v in optim[name].items()}


def read_jsonl(path: Path, *, torn_tail: bool = False) -> list[dict]:
    """The rows of a ``.jsonl`` log, each an object with an integer ``step``; a bad row is a one-line
    ``ValueError`` naming the file and line. ``torn_tail=True`` drops a last line cut short by a kill
    (no newline at its end, or not valid JSON) instead: it is about to be rewritten."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not valid UTF-8 at byte {err.start}") from None
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = isinstance(row, dict) and isinstance(row.get("step"), int)
        except ValueError as err:
            row, ok = None, False
            why = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
        else:
            why = "not an object with an integer 'step'"
        if not ok:
            if torn_tail and not any(rest.strip() for rest in lines[i:]):
                break  # the last row, torn by a kill
            raise ValueError(one_line(f"{path}: line {i} is not a valid log row ({why})"))
        rows.append(row)
    return rows


def one_line(text: str) -> str:
    return " ".join(str(text).split())
