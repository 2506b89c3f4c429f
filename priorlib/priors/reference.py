"""``Reference``: the space prompts live in (token embeddings, or activations at one hook point).

A reference is a matrix of rows ``vectors: [N, d]`` plus what the priors and metrics may need:
a fitted Gaussian (lazily, via ``StreamingGaussian``), the token ids of the rows, token
frequencies (for ``top_k``), and ``embed_text`` (for the ``text`` prior). Token-embedding and
activation references go through exactly the same code paths.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from ..stats import Gaussian, StreamingGaussian

__all__ = ["Reference", "AUTO_SHRINK_MAX_CONDITION"]

AUTO_SHRINK_MAX_CONDITION = 1e8  # "auto": shrink when cond(cov) exceeds this (or N < 10 d)


@dataclass(eq=False)
class Reference:
    vectors: Tensor  # [N, d] float32
    name: str
    gaussian: Gaussian | None = None
    token_ids: Tensor | None = None  # [N] long: the token id of each row (None: row index)
    frequencies: Tensor | None = None  # [N] counts or probabilities, aligned with rows
    embed_text: Callable[[str], Tensor] | None = None  # text -> [n, d]
    _fits: dict = field(default_factory=dict, init=False, repr=False)
    memo: dict = field(default_factory=dict, init=False, repr=False)  # derived results (metrics cache)
    _hash: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.vectors = self.vectors.detach().to("cpu", torch.float32).contiguous()
        if self.vectors.ndim != 2 or self.vectors.shape[0] < 1:
            raise ValueError(f"Reference {self.name!r}: vectors must be [N, d], got {tuple(self.vectors.shape)}")
        for attr in ("token_ids", "frequencies"):
            value = getattr(self, attr)
            if value is not None and value.shape[0] != self.vectors.shape[0]:
                raise ValueError(f"Reference {self.name!r}: {attr} has {value.shape[0]} rows, vectors {len(self)}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    @torch.no_grad()
    def from_embeddings(cls, model, tokenizer=None, *, chunk_size: int = 4096,
                        frequencies: Tensor | None = None) -> "Reference":
        """Rows = ``model.get_input_embeddings()(arange(V))``, computed in chunks.

        Calling the embedding *module* (not reading its weight) respects models that scale their
        input embeddings (Gemma multiplies by ``sqrt(d)``). With a ``tokenizer``, ``embed_text``
        embeds a string without special tokens, in the same way.
        """
        emb = model.get_input_embeddings()
        vocab = emb.weight.shape[0] if hasattr(emb, "weight") else emb.num_embeddings
        device = emb.weight.device if hasattr(emb, "weight") else "cpu"
        ids = torch.arange(vocab)
        rows = torch.cat([emb(c.to(device)).float().cpu() for c in ids.split(chunk_size)])  # [V, d]
        embed_text = None
        if tokenizer is not None:
            def embed_text(text: str) -> Tensor:
                tok_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
                with torch.no_grad():
                    return emb(tok_ids.to(device)).float().cpu()  # [n, d]
        return cls(rows, "token embeddings", token_ids=ids, frequencies=frequencies, embed_text=embed_text)

    @classmethod
    def from_activations(cls, acts: Tensor, name: str, gaussian: Gaussian | None = None) -> "Reference":
        """Rows = captured activations ``acts: [N, d]`` (or ``[..., d]``, flattened)."""
        return cls(acts.reshape(-1, acts.shape[-1]), name, gaussian=gaussian)

    def subset(self, index: Tensor, name: str | None = None) -> "Reference":
        """Rows ``index`` (long indices or a bool mask) as a new reference, metadata kept."""
        pick = (lambda t: None if t is None else t[index])
        return Reference(self.vectors[index], name or f"{self.name}[subset]", token_ids=pick(self.token_ids),
                         frequencies=pick(self.frequencies), embed_text=self.embed_text)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def ids(self) -> Tensor:
        """Token id of every row (row index when the reference has no token ids)."""
        return self.token_ids if self.token_ids is not None else torch.arange(len(self))

    def content_hash(self) -> str:
        """:func:`priorlib.cache.fingerprint` of the rows: a cache key for things trained on them."""
        if self._hash is None:
            from ..cache import fingerprint
            self._hash = fingerprint(self.vectors)
        return self._hash

    # ------------------------------------------------------------------ Gaussian fit
    def fit(self, shrinkage: str | float = "auto", chunk_size: int = 8192) -> Gaussian:
        """The Gaussian of the rows, fitted once per ``shrinkage`` with ``StreamingGaussian``.

        ``"auto"`` uses a given ``gaussian`` if there is one; otherwise it fits without shrinkage,
        and switches to Ledoit-Wolf when ``N < 10 d`` or ``cond(cov) > 1e8``.
        """
        if shrinkage == "auto" and self.gaussian is not None:
            return self.gaussian
        if shrinkage not in self._fits:
            acc = StreamingGaussian(self.dim)
            for chunk in self.vectors.split(chunk_size):
                acc.update(chunk)
            if shrinkage == "auto":
                g = acc.fit("none")
                if len(self) < 10 * self.dim or g.condition_number() > AUTO_SHRINK_MAX_CONDITION:
                    g = acc.fit("ledoit-wolf")
                self.gaussian = g
            else:
                g = acc.fit(shrinkage)
            self._fits[shrinkage] = g
        return self._fits[shrinkage]

    def per_dim_std(self) -> Tensor:
        """``sqrt(diag(cov))`` of the auto fit: ``[d]``."""
        return torch.diagonal(self.fit().cov).sqrt()
