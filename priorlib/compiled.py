"""Compiled decoder layers for training: ``torch.compile`` (inductor) of each layer's ``forward``.

Usage::

    with compiled_layers(model, start=0):   # every layer of the frozen model
        loss, n = lm.answer_loss(ids, labels)
        loss.backward()

Each decoder layer's ``forward`` (and the final norm's) is compiled once per layer, with dynamic shapes, so
batches of any length reuse one graph; inductor fuses the RMSNorm, SiLU gating and rotary arithmetic that
eager mode runs op by op. Only ``forward`` is compiled: module hooks (deep prompts) still run around it,
in eager mode. Outside the context the layers are plain again, so greedy decoding with a key/value
cache never meets the compiled graphs. Measured on SmolLM2-135M, 2 CPU cores with AMX-BF16: 1.27x per
soft-prompt step, 1.26x per cached deep step, and ~20 s of compilation once per process with a warm
inductor cache (~2 min cold). ``PRIORLIB_COMPILE=0`` turns it off for a process (tests, debugging).
"""
from __future__ import annotations

import contextlib
import os

from torch import nn

from . import arch

_ATTR = "_priorlib_compiled_forward"


def enabled(requested: bool = True) -> bool:
    """Whether a run that asked for compiled layers gets them (``PRIORLIB_COMPILE=0`` says no)."""
    return bool(requested) and os.environ.get("PRIORLIB_COMPILE", "1") != "0"


def _compiled(module: nn.Module):
    import torch
    fn = module.__dict__.get(_ATTR)
    if fn is None:
        fn = torch.compile(type(module).forward.__get__(module), dynamic=True)
        module.__dict__[_ATTR] = fn
    return fn


@contextlib.contextmanager
def compiled_layers(model: nn.Module, start: int = 0, on: bool = True):
    """Inside: layers ``start..`` of ``model`` and its final norm run compiled forwards (``on=False``:
    a no-op). Restores the plain forwards on exit, even after an error."""
    if not on:
        yield
        return
    mods = [m for m in list(arch.layers(model))[start:] + [arch.final_norm(model)]
            if "forward" not in m.__dict__]  # nested: the outer context keeps its own
    try:
        for m in mods:
            m.forward = _compiled(m)  # an instance attribute shadows the class's forward
        yield
    except Exception as err:
        if type(err).__module__.startswith("torch._dynamo") or type(err).__name__ == "BackendCompilerFailed":
            raise RuntimeError(f"torch.compile failed on this machine ({type(err).__name__}: {str(err)[:200]}); "
                               "rerun with compile off (--no-compile, or PRIORLIB_COMPILE=0)") from err
        raise
    finally:
        for m in mods:
            m.__dict__.pop("forward", None)
