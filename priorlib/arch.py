"""Where things are inside a Hugging Face decoder LM (Llama, Gemma-3, Qwen-2 ... share this layout).

Everything else in priorlib reaches the model only through these accessors, so a new family needs
changes here and nowhere else.
"""
from __future__ import annotations

import functools
import inspect

import torch
from torch import nn


def backbone(model: nn.Module) -> nn.Module:
    """The decoder stack (``LlamaModel``) under a ``*ForCausalLM``."""
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers"):
        raise ValueError(f"{type(model).__name__} has no .model.layers: not a supported decoder LM")
    return inner


def layers(model: nn.Module) -> nn.ModuleList:
    return backbone(model).layers


def n_layers(model: nn.Module) -> int:
    return len(layers(model))


def d_model(model: nn.Module) -> int:
    return model.config.hidden_size


def embed(model: nn.Module) -> nn.Module:
    """The input embedding module; Gemma's scales by sqrt(d) inside it, so its output is the prompt space."""
    return model.get_input_embeddings()


def final_norm(model: nn.Module) -> nn.Module:
    return backbone(model).norm


def lm_head(model: nn.Module) -> nn.Module:
    return model.get_output_embeddings()


def rotary(model: nn.Module) -> nn.Module:
    return backbone(model).rotary_emb


@functools.lru_cache(maxsize=None)
def _rope_takes_layer_type(rope_class: type) -> bool:
    return "layer_type" in inspect.signature(rope_class.forward).parameters


def rope_kind(model: nn.Module, layer: int) -> str | None:
    """Which rotary embedding layer ``layer`` uses: its layer type where the model has one rotary
    embedding per type (Gemma-3: local, theta 1e4, for sliding-window layers; global, theta 1e6, for
    full-attention layers), else None (Llama: one for all)."""
    types = getattr(model.config, "layer_types", None)
    return types[layer] if types is not None and _rope_takes_layer_type(type(rotary(model))) else None


def rope_for(model: nn.Module, layer: int):
    """``(x, position_ids) -> (cos, sin)`` for decoder layer ``layer`` (see :func:`rope_kind`)."""
    rope, kind = rotary(model), rope_kind(model, layer)
    return rope if kind is None else (lambda x, pos: rope(x, pos, kind))


def sliding_window(model: nn.Module) -> int | None:
    """The smallest attention window of any layer (None: every layer attends to the whole sequence)."""
    types = getattr(model.config, "layer_types", None) or ()
    return getattr(model.config, "sliding_window", None) if "sliding_attention" in types else None


def resolve_layers(model: nn.Module, indices) -> list[int]:
    """Turn layer indices (negative counts from the top) into sorted, unique, non-negative ones."""
    n = n_layers(model)
    out = []
    for i in indices:
        j = int(i)
        if not -n <= j < n:
            raise ValueError(f"layer index {i} is outside the model's {n} layers (valid: {-n}..{n - 1})")
        out.append(j % n)
    if len(set(out)) != len(out):
        raise ValueError(f"layer indices {list(indices)} name the same layer twice")
    return sorted(out)


def token_embeddings(model: nn.Module, chunk: int = 8192) -> torch.Tensor:
    """All rows of the input-embedding space as the model sees them, ``[V, d]`` float32 (scaling included)."""
    emb = embed(model)
    vocab = emb.num_embeddings
    dev = emb.weight.device
    with torch.no_grad():
        rows = [emb(torch.arange(s, min(s + chunk, vocab), device=dev)).float() for s in range(0, vocab, chunk)]
    return torch.cat(rows)  # [V, d]
