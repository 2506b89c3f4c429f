"""Named hook points and the forward pass that reads them, in the style of TransformerLens / baukit.

Hook points (strings):

- ``embed``                   output of the input embedding, ``[batch, pos, d_model]``
- ``layers.{i}.resid_pre``    input of decoder layer i (== ``layers.{i-1}.resid_post``)
- ``layers.{i}.resid_post``   output of decoder layer i, *before* the final norm
- ``final_norm``              output of the final norm (what the LM head reads)

``Trace`` is a context manager that records the named points of one forward pass and, with
``stop=True``, aborts the forward right after the deepest point it needs, so capturing layer 3 of a
30-layer model costs 4 layers. ``hook_points`` lists the points of a model's blocks, ``depth_of`` says
how many blocks a point has passed. ``iter_activations`` runs ``Trace`` over a list of texts in batches
(bf16, no grad, right padding without an attention mask: causal attention never lets a real token see
the padding after it, so real positions are exact); :mod:`priorlib.activations` decides what to keep.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import arch
from .batching import bos_ids
from .config import POINT_SYNTAX as _POINT  # one definition of a hook point's name


class StopForward(Exception):
    """Raised inside a hook to end a forward pass early; ``Trace`` swallows it."""


@dataclass(frozen=True)
class HookPoint:
    name: str            # canonical name, layer index non-negative
    module: nn.Module
    pre: bool            # read the module's input (pre-hook) rather than its output
    depth: int           # order in the forward: embed=-1, layer i -> i (pre) / i + 0.5 (post), norm = n


def parse_point(model: nn.Module, name: str) -> HookPoint:
    m = _POINT.match(name)
    if not m:
        raise ValueError(f"unknown hook point {name!r}; use 'embed', 'final_norm', "
                         "'layers.{i}.resid_pre' or 'layers.{i}.resid_post'")
    if m.group(1) == "embed":
        return HookPoint("embed", arch.embed(model), False, -1.0)
    if m.group(1) == "final_norm":
        return HookPoint("final_norm", arch.final_norm(model), False, float(arch.n_layers(model)))
    (i,) = arch.resolve_layers(model, [int(m.group(2))])
    pre = m.group(3) == "resid_pre"
    return HookPoint(f"layers.{i}.{m.group(3)}", arch.layers(model)[i], pre, i + (0.0 if pre else 0.5))


def hook_points(model: nn.Module, layers: Sequence[int] | None = None, *, site: str = "resid_post",
                embed: bool = True) -> list[str]:
    """``["embed", "layers.i.<site>", ...]`` for the chosen blocks (all when ``None``; negative indices
    count from the end). ``site`` is ``"resid_post"`` (block outputs) or ``"resid_pre"`` (block inputs);
    ``embed=False`` leaves out the embeddings."""
    if site not in ("resid_pre", "resid_post"):
        raise ValueError(f"site must be 'resid_pre' or 'resid_post', not {site!r}")
    idx = list(range(arch.n_layers(model))) if layers is None else arch.resolve_layers(model, layers)
    return (["embed"] if embed else []) + [f"layers.{i}.{site}" for i in idx]


def depth_of(point: str) -> int:
    """Decoder blocks an activation has passed: 0 for ``embed``, ``i`` for ``layers.i.resid_pre``, ``i + 1``
    for ``layers.i.resid_post`` (the ``hidden_states`` index of Hugging Face models)."""
    m = _POINT.match(point)
    if not m or m.group(1) == "final_norm" or int(m.group(2) or 0) < 0:
        raise ValueError(f"depth_of needs 'embed' or 'layers.{{i}}.resid_pre/post' with i >= 0, got {point!r}")
    if m.group(1) == "embed":
        return 0
    return int(m.group(2)) + (m.group(3) == "resid_post")


def depth_labels(points: Sequence[str]) -> list[int]:
    """:func:`depth_of` of each point."""
    return [depth_of(p) for p in points]


def _first_tensor(x):
    return x[0] if isinstance(x, (tuple, list)) else x


class Trace:
    """Record named activations during a forward pass.

    >>> with Trace(model, ["layers.5.resid_post"], stop=True) as tr:
    ...     tr.run(input_ids=ids)
    >>> tr["layers.5.resid_post"]        # [batch, pos, d_model]
    """

    def __init__(self, model: nn.Module, points: Iterable[str], *, stop: bool = False, detach: bool = True):
        self.model = model
        self.points = [parse_point(model, p) for p in points]
        if not self.points:
            raise ValueError("Trace needs at least one hook point")
        self.stop = stop
        self.detach = detach
        self.activations: dict[str, torch.Tensor] = {}
        self._handles = []
        self._last = max(self.points, key=lambda p: p.depth).name

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.activations[parse_point(self.model, name).name]

    def _record(self, point: HookPoint, tensor: torch.Tensor):
        self.activations[point.name] = tensor.detach() if self.detach else tensor
        if self.stop and point.name == self._last:
            raise StopForward

    def __enter__(self) -> "Trace":
        for p in self.points:
            if p.pre:
                def hook(mod, args, kwargs, p=p):
                    self._record(p, args[0] if args else kwargs["hidden_states"])
                self._handles.append(p.module.register_forward_pre_hook(hook, with_kwargs=True))
            else:
                def hook(mod, args, out, p=p):
                    self._record(p, _first_tensor(out))
                self._handles.append(p.module.register_forward_hook(hook))
        return self

    def __exit__(self, *exc) -> bool:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        return exc[0] is StopForward

    def run(self, **inputs) -> None:
        """Call the backbone (no LM head: it is never needed for activations) and stop early if asked."""
        try:
            arch.backbone(self.model)(**inputs, use_cache=False)
        except StopForward:
            pass


@contextmanager
def no_grad_autocast(device: torch.device | str, dtype: torch.dtype | None):
    dev_type = torch.device(device).type
    with torch.no_grad():
        if dtype is None or dtype == torch.float32:
            yield
        else:
            with torch.autocast(dev_type, dtype=dtype):
                yield


def tokenize_batch(tok, texts: list[str], max_length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids [B, T]`` and a boolean ``mask [B, T]`` of real tokens."""
    enc = tok(texts, add_special_tokens=False, truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    if any(len(x) == 0 for x in ids):
        raise ValueError("a text tokenised to zero tokens")
    T = max(len(x) for x in ids)
    pad = tok.pad_token_id
    input_ids = torch.full((len(ids), T), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), T), dtype=torch.bool)
    for b, x in enumerate(ids):
        input_ids[b, : len(x)] = torch.tensor(x)
        mask[b, : len(x)] = True
    return input_ids.to(device), mask.to(device)


def with_bos(tok, input_ids: torch.Tensor) -> torch.Tensor:
    """``[B, T] -> [B, b + T]``: the tokenizer's BOS token(s) in front (none for SmolLM2)."""
    bos = bos_ids(tok)
    if not bos:
        return input_ids
    head = torch.tensor(bos, dtype=input_ids.dtype, device=input_ids.device).expand(input_ids.shape[0], -1)
    return torch.cat([head, input_ids], dim=1)


def text_activations(model: nn.Module, tok, input_ids: torch.Tensor, points: list[str],
                     dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Activations ``{point: [B, T, d]}`` of the text ``input_ids [B, T]``, forward stopped after the
    deepest point. The model's BOS token (if it has one) is run at position 0 but not returned, so rows
    align with ``input_ids``."""
    device = input_ids.device
    with no_grad_autocast(device, dtype), Trace(model, points, stop=True) as tr:
        tr.run(input_ids=with_bos(tok, input_ids))
    nb = len(bos_ids(tok))
    return {k: v[:, nb:] for k, v in tr.activations.items()}


def iter_activations(model: nn.Module, tok, texts: list[str], points: list[str], *, batch_size: int = 16,
                     max_length: int = 256, dtype: torch.dtype | None = torch.bfloat16, bucket: int | None = None,
                     progress: bool = True, desc: str = "capture") -> Iterator[tuple[dict, torch.Tensor, torch.Tensor, list[int]]]:
    """Yield ``(acts, mask, input_ids, indices)`` per batch; ``acts[name]`` is ``[B, T, d]`` float32.

    A model with a BOS token sees it at position 0; its activations are dropped, so ``acts`` align
    with the text tokens ``input_ids`` and ``mask [B, T]`` marks the real ones.

    Texts are sorted by token count into batches (less padding); ``indices`` maps rows back to
    ``texts``. The forward stops after the deepest requested point. With ``bucket``, every forward
    sees ``batch_size`` rows and a multiple of ``bucket`` positions (the extra rows are dropped before
    yielding): on CPU, oneDNN compiles kernels per input shape, and with every batch a new length that
    compilation costs more than the forward itself; a handful of shapes removes it. Padding after the
    real tokens never changes them (causal attention).
    """
    device = next(model.parameters()).device
    ids = tok(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    if any(len(x) == 0 for x in ids):
        raise ValueError("a text tokenised to zero tokens")
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, unit="batch"):
        idx = order[start: start + batch_size]
        T = max(len(ids[i]) for i in idx)
        rows = len(idx)
        if bucket:
            T, rows = -(-T // bucket) * bucket, batch_size
        input_ids = torch.full((rows, T), pad, dtype=torch.long)
        mask = torch.zeros((rows, T), dtype=torch.bool)
        for b, i in enumerate(idx):
            input_ids[b, : len(ids[i])] = torch.tensor(ids[i])
            mask[b, : len(ids[i])] = True
        input_ids = input_ids.to(device)
        acts = text_activations(model, tok, input_ids, points, dtype)
        n = len(idx)
        yield {k: v[:n].float() for k, v in acts.items()}, mask[:n].to(device), input_ids[:n], idx
