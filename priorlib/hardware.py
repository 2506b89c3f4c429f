"""What this machine's CPU can do natively, where it decides how fast a run is.

    from priorlib.hardware import native_bf16
    native_bf16("cpu")      # False on a CPU without AVX512-BF16 or AMX-BF16 (bf16 matmuls then crawl)

bf16 is the default precision because on a CPU with AVX512-BF16 or AMX-BF16 its matmuls run about 3x
faster than fp32. On one without (an AVX2-only CPU), PyTorch falls back to a slow generic path: measured
on a 2-core AVX2 AMD EPYC, a 2048x2048 bf16 matmul ran at 0.28 GFLOP/s against 128 for fp32, and a
SmolLM2 soft-prompt step of 4 x 128 tokens took 80 s instead of about 1 s. The trainer warns once
(:func:`warn_if_slow_bf16`); precision is part of a run's identity, so it is never switched silently.
"""
from __future__ import annotations

import functools
import platform
import warnings
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


class SlowPrecisionWarning(UserWarning):
    """bf16 was asked for on a device that has no native bf16 arithmetic."""


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags (Linux), or None where they cannot be read."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def cpu_model(path: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (``Intel(R) Xeon(R) Processor``), else what :mod:`platform` says (``x86_64``).
    Two machines of one architecture differ here, and so do their run times."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def native_bf16(device: str = "cpu") -> bool | None:
    """Whether ``device`` computes in bf16 natively: True, False, or None when it cannot be told (a CPU
    whose flags cannot be read, e.g. not Linux, or not x86)."""
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind != "cpu" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    flags = cpu_flags()
    return None if flags is None else any(f in flags for f in BF16_FLAGS)


def warn_if_slow_bf16(precision: str, device: str) -> bool:
    """Warn (once per process and device) when ``precision`` is bf16 and ``device`` has no native bf16;
    returns whether it warned."""
    if getattr(precision, "value", precision) != "bf16" or native_bf16(device) is not False:
        return False
    if device in _warned:
        return False
    _warned.add(device)
    warnings.warn(f"precision bf16 on {device}: this CPU has no AVX512-BF16/AMX-BF16, so bf16 matmuls run about "
                  f"100x slower than fp32 here; pass --precision fp32 (precision is part of a run's identity, "
                  f"so it is not switched for you)", SlowPrecisionWarning, stacklevel=2)
    return True


_warned: set[str] = set()
