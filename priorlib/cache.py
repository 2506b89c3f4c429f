"""The one content-addressed cache of priorlib: every expensive intermediate that is computed once and reused.

    out = cached("web-capture", {"model": "smollm2-135m", "texts": fingerprint(texts)}, compute)

``compute()`` returns a ``dict[str, Tensor | ndarray]``; the first call stores it and later calls with
the *same* parameters load it, while any change of a parameter computes afresh. Users: activation
references (:mod:`priorlib.initial`), trained VAE priors (:mod:`priorlib.priors.vae`), the per-text
captures and t-SNE maps of :mod:`priorlib.activations` / :mod:`priorlib.projection`, and the
compendium's domain means and cluster scores.

One hashing: :func:`params_key` serialises ``{"name", "params", "version"}`` as canonical JSON (sorted
keys) and takes its sha256; data that parameters depend on enter ``params`` as a :func:`fingerprint`
(sha256 of array bytes, dtype and shape, or of texts). Nothing is pickled: torch tensors go into a
``.safetensors`` file, numpy arrays into an ``.npz`` read with ``allow_pickle=False``, and a ``.json``
sidecar with the parameters and the key list is written last. Every file is written under a name of
its own (pid) and renamed into place, so neither an interrupted write nor two concurrent writers
ever leave an entry that counts as a hit with half its contents.

Where: ``$PRIORLIB_ARTIFACTS`` if set, else ``$PRIORLIB_CACHE/artifacts`` (default
``~/.cache/priorlib/artifacts``). ``PRIORLIB_NO_CACHE=1`` (or ``true`` / ``yes``) recomputes and
rewrites every entry.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import engine

__all__ = ["cached", "artifacts_dir", "params_key", "fingerprint", "cache_enabled"]

_VERSION = 1  # bump when the on-disk layout changes


def artifacts_dir() -> Path:
    explicit = os.environ.get("PRIORLIB_ARTIFACTS", "").strip()
    if explicit:
        root = Path(explicit).expanduser()
    else:
        root = Path(os.environ.get("PRIORLIB_CACHE", Path.home() / ".cache" / "priorlib")) / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_enabled() -> bool:
    """False when ``PRIORLIB_NO_CACHE`` is ``1`` / ``true`` / ``yes``: every entry is recomputed."""
    return os.environ.get("PRIORLIB_NO_CACHE", "").strip().lower() not in ("1", "true", "yes")


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, set, frozenset)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value)
    raise TypeError(f"cache parameters must be JSON-like; got {type(value).__name__}: {value!r}")


def params_key(name: str, params: dict) -> str:
    """sha256 of ``{"name", "params", "version", "engine"}`` as canonical JSON (sorted keys). The engine
    version (:data:`priorlib.engine.ENGINE_VERSION`) is part of it, so an artifact computed by older code
    is never served to newer code (an artifact that outlives a change of results would serve old numbers)."""
    blob = json.dumps({"name": name, "params": params, "version": _VERSION, "engine": engine.ENGINE_VERSION},
                      sort_keys=True, default=_jsonable, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def fingerprint(*values) -> str:
    """A short sha256 of data, to key results derived from it: arrays and tensors (dtype, shape and
    bytes), strings, and lists of strings (each length-prefixed, so no two lists collide)."""
    h = hashlib.sha256()
    for v in values:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, (list, tuple)) and all(isinstance(t, str) for t in v):
            h.update(f"texts{len(v)}".encode())
            for t in v:
                b = t.encode()
                h.update(f"{len(b)}:".encode())
                h.update(b)
            continue
        a = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _paths(name: str, key: str) -> tuple[Path, Path, Path]:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    stem = artifacts_dir() / f"{safe}-{key[:24]}"
    return stem.with_suffix(".json"), stem.with_suffix(".safetensors"), stem.with_suffix(".npz")


def _load(meta_path: Path, st_path: Path, npz_path: Path) -> dict | None:
    try:
        meta = json.loads(meta_path.read_text())
        out: dict = {}
        if meta["torch_keys"]:
            from safetensors.torch import load_file

            out.update(load_file(str(st_path)))
        if meta["numpy_keys"]:
            with np.load(npz_path, allow_pickle=False) as z:
                out.update({k: z[k] for k in z.files})
        if set(out) != set(meta["torch_keys"]) | set(meta["numpy_keys"]):
            return None
        return {k: out[k] for k in meta["order"]}
    except (OSError, ValueError, KeyError):
        return None


def _tmp_beside(path: Path) -> Path:
    """A fresh temporary file next to ``path`` (unique per writer: concurrent stores never share one)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o644)  # mkstemp makes it private; a cache entry is as readable as any other file
    return Path(name)


def _store(result: dict, params: dict, meta_path: Path, st_path: Path, npz_path: Path) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in result.items() if isinstance(v, torch.Tensor)}
    arrays = {k: np.asarray(v) for k, v in result.items() if not isinstance(v, torch.Tensor)}
    for k, a in arrays.items():
        if a.dtype == object:
            raise TypeError(f"cached: {k!r} is an object array; only numeric arrays and tensors are stored")
    if tensors:
        from safetensors.torch import save_file

        tmp = _tmp_beside(st_path)
        save_file(tensors, str(tmp))
        tmp.replace(st_path)
    if arrays:
        tmp = _tmp_beside(npz_path)
        with open(tmp, "wb") as f:  # a file object: np.savez adds no suffix
            np.savez(f, **arrays)
        tmp.replace(npz_path)
    meta = {"params": params, "order": list(result), "torch_keys": sorted(tensors), "numpy_keys": sorted(arrays)}
    tmp = _tmp_beside(meta_path)
    tmp.write_text(json.dumps(meta, sort_keys=True, default=_jsonable, indent=1))
    tmp.replace(meta_path)  # written last: its presence marks a complete entry


_log = logging.getLogger("priorlib.cache")  # hits and stores at INFO: silent in the book, on with logging.basicConfig


def cached(name: str, params: dict, compute: Callable[[], dict], *, verbose: bool = True) -> dict:
    """``compute()`` once per distinct ``(name, params)``; later calls load the stored arrays.

    Values must be torch tensors or numeric numpy arrays (Python scalars become 0-d arrays); they
    come back as they went in (tensors as tensors, arrays as arrays, in the same key order).
    """
    key = params_key(name, params)
    meta_path, st_path, npz_path = _paths(name, key)
    if cache_enabled() and meta_path.exists():
        hit = _load(meta_path, st_path, npz_path)
        if hit is not None:
            if verbose:
                _log.info("cache hit: %s (%s)", name, key[:12])
            return hit
    result = compute()
    if not isinstance(result, dict):
        raise TypeError(f"cached: compute() for {name!r} must return a dict, got {type(result).__name__}")
    result = {k: v if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in result.items()}
    _store(result, params, meta_path, st_path, npz_path)
    if verbose:
        _log.info("cache store: %s (%s)", name, key[:12])
    return result
