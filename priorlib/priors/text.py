"""``text``: prompts start as the embeddings of a task description (Lester et al.'s text init)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import register_prior
from .reference import Reference


@dataclass
class TextParams:
    text: str = ""

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise ValueError(f"text: text must be a string, got {type(self.text).__name__}")


@register_prior("text", TextParams)
def text(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *, text: str) -> Tensor:
    """Text initialisation: ``x_i = E[t_(i mod m)]`` for the ``m`` tokens ``t`` of ``text``.

    The text is embedded with ``reference.embed_text`` (which ``Reference.from_embeddings`` sets up
    from a tokenizer), then repeated cyclically or cut to ``n_tokens``. The generator is unused.
    """
    if not text:
        raise ValueError("text: give the text to embed, e.g. text='Answer the question based on the context'")
    if reference.embed_text is None:
        raise ValueError(f"text: reference {reference.name!r} has no embed_text (build it with "
                         "Reference.from_embeddings(model, tokenizer))")
    emb = reference.embed_text(text).float()  # [m, d]
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] != shape[1]:
        raise ValueError(f"text: embed_text gave shape {tuple(emb.shape)} for {text!r}, expected [m>0, {shape[1]}]")
    return emb[torch.arange(shape[0]) % emb.shape[0]]  # [n, d]
