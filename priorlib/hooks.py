"""Named hook points and activation capture, in the style of TransformerLens / baukit.

Hook points (strings):

- ``embed``                   output of the input embedding, ``[batch, pos, d_model]``
- ``layers.{i}.resid_pre``    input of decoder layer i (== ``layers.{i-1}.resid_post``)
- ``layers.{i}.resid_post``   output of decoder layer i, *before* the final norm
- ``final_norm``              output of the final norm (what the LM head reads)

``Trace`` is a context manager that records the named points of one forward pass and, with
``stop=True``, aborts the forward right after the deepest point it needs, so capturing layer 3 of a
30-layer model costs 4 layers. ``iter_activations`` runs it over a list of texts in batches (bf16,
no grad, right padding without an attention mask: causal attention never lets a real token see the
padding after it, so real positions are exact).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from . import arch
from .batching import bos_ids

_POINT = re.compile(r"^(embed|final_norm|layers\.(-?\d+)\.(resid_pre|resid_post))$")


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
                     max_length: int = 256, dtype: torch.dtype | None = torch.bfloat16,
                     progress: bool = True, desc: str = "capture") -> Iterator[tuple[dict, torch.Tensor, torch.Tensor, list[int]]]:
    """Yield ``(acts, mask, input_ids, indices)`` per batch; ``acts[name]`` is ``[B, T, d]`` float32.

    A model with a BOS token sees it at position 0; its activations are dropped, so ``acts`` align
    with the text tokens ``input_ids``.

    Texts are sorted by length into batches (less padding); ``indices`` maps rows back to ``texts``.
    The forward stops after the deepest requested point.
    """
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [order[s: s + batch_size] for s in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc=desc, disable=not progress, unit="batch"):
        input_ids, mask = tokenize_batch(tok, [texts[i] for i in idx], max_length, device)
        acts = text_activations(model, tok, input_ids, points, dtype)
        yield {k: v.float() for k, v in acts.items()}, mask, input_ids, idx


def capture(model: nn.Module, tok, texts: list[str], points: list[str], *, reduce: str = "tokens",
            batch_size: int = 16, max_length: int = 256, dtype=torch.bfloat16, progress: bool = True,
            stats: bool = False, max_rows: int | None = None, seed: int = 0) -> dict:
    """Capture activations at ``points`` for ``texts``.

    reduce:
      - ``"tokens"``: every real token's vector, ``[N_tokens, d]`` float16 per point (subsampled to
        ``max_rows`` with a fixed seed when given), plus ``text_index`` / ``position`` ``[N_tokens]``.
      - ``"mean"``: one mean vector per text, ``[len(texts), d]`` float32 (the task-cluster view).
      - ``"trajectory"``: a list, per text, of ``[T_i, d]`` float16 tensors (token trajectories).
    With ``stats=True`` a :class:`priorlib.stats.StreamingGaussian` per point sees *every* token
    (float64 accumulation), so a Gaussian fits all of them even when only a subsample is kept.
    """
    if reduce not in ("tokens", "mean", "trajectory"):
        raise ValueError(f"reduce must be 'tokens', 'mean' or 'trajectory', not {reduce!r}")
    names = [parse_point(model, p).name for p in points]
    out: dict = {"points": names}
    if stats:
        from .stats import StreamingGaussian
        out["stats"] = {n: StreamingGaussian() for n in names}
    chunks: dict[str, list] = {n: [] for n in names}
    text_index, position = [], []
    traj: dict[str, list] = {n: [None] * len(texts) for n in names}
    means: dict[str, torch.Tensor] = {}
    for acts, mask, _, idx in iter_activations(model, tok, texts, names, batch_size=batch_size,
                                               max_length=max_length, dtype=dtype, progress=progress):
        lengths = mask.sum(1)
        for n in names:
            a = acts[n]  # [B, T, d]
            if stats:
                out["stats"][n].update(a[mask].double())
            if reduce == "tokens":
                chunks[n].append(a[mask].half().cpu())  # [n_real, d]
            elif reduce == "mean":
                m = (a * mask[..., None]).sum(1) / lengths[:, None]  # [B, d]
                for row, i in enumerate(idx):
                    means.setdefault(n, torch.empty(len(texts), a.shape[-1]))[i] = m[row].cpu()
            else:
                for row, i in enumerate(idx):
                    traj[n][i] = a[row, : lengths[row]].half().cpu()
        if reduce == "tokens":
            for row, i in enumerate(idx):
                L = int(lengths[row])
                text_index.append(torch.full((L,), i))
                position.append(torch.arange(L))
    if reduce == "tokens":
        ti, pos = torch.cat(text_index), torch.cat(position)
        keep = None
        if max_rows is not None and len(ti) > max_rows:
            g = torch.Generator().manual_seed(seed)
            keep = torch.randperm(len(ti), generator=g)[:max_rows].sort().values
        for n in names:
            x = torch.cat(chunks[n])
            out[n] = x if keep is None else x[keep]
        out["text_index"] = ti if keep is None else ti[keep]
        out["position"] = pos if keep is None else pos[keep]
    elif reduce == "mean":
        out.update(means)
    else:
        out.update(traj)
    return out
