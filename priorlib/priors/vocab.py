"""``vocab-sample``: prompts start on actual reference rows (e.g. real token embeddings)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import register_prior
from .reference import Reference


@dataclass
class VocabSampleParams:
    top_k: int | None = None  # restrict to the top_k most frequent rows (needs reference.frequencies)

    def __post_init__(self):
        if self.top_k is not None and int(self.top_k) < 1:
            raise ValueError(f"vocab-sample: top_k must be >= 1, got {self.top_k}")


def vocab_sample_indices(generator: torch.Generator, n: int, reference: Reference, top_k: int | None) -> Tensor:
    """Row indices ``[n]``, distinct, uniformly without replacement from the (top-k) candidates."""
    if top_k is None:
        candidates = torch.arange(len(reference))
    else:
        if reference.frequencies is None:
            raise ValueError(f"vocab-sample: top_k needs token frequencies, reference {reference.name!r} has none")
        candidates = torch.topk(reference.frequencies.double(), min(int(top_k), len(reference))).indices
    if n > candidates.numel():
        raise ValueError(f"vocab-sample: asked for {n} distinct rows but only {candidates.numel()} are available")
    return candidates[torch.randperm(candidates.numel(), generator=generator)[:n]]


@register_prior("vocab-sample", VocabSampleParams)
def vocab_sample(generator: torch.Generator, shape: tuple[int, int], reference: Reference, *,
                 top_k: int | None) -> Tensor:
    """Vocabulary sampling: ``x_i = E[t_i]`` with distinct rows ``t_i`` drawn uniformly without replacement.

    With ``top_k``, the ``t_i`` come from the ``top_k`` most frequent rows only (by
    ``reference.frequencies``). The prompts are exactly reference rows: NN distance 0 by design.
    """
    return reference.vectors[vocab_sample_indices(generator, shape[0], reference, top_k)].clone()  # [n, d]
