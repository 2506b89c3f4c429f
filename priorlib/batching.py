"""Examples -> token ids with answer labels, truncation that keeps the answer, length-bucketed batches."""
from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100  # the label of positions that take no part in the loss (PyTorch's cross-entropy default)


@dataclass(frozen=True)
class Encoded:
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]   # answer tokens (+ EOS), the only ones the loss sees

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.target_ids)


def bos_ids(tok) -> tuple[int, ...]:
    """The token(s) the tokenizer puts in front of every text: ``(bos,)`` for Gemma, ``()`` for SmolLM2.

    Text ids in priorlib never contain them (``add_special_tokens=False`` everywhere); the model-facing
    code (:class:`priorlib.prompts.PromptedLM`, activation capture) puts them back at position 0, in
    front of any soft prompt, because a model trained with a BOS sink degrades badly without it
    (Gemma-3-270M: 5.8 instead of 3.0 nats per token on web text).
    """
    cached = getattr(tok, "_priorlib_bos", None)
    if cached is None:
        with_special = tok("a")["input_ids"]
        plain = tok("a", add_special_tokens=False)["input_ids"]
        bos = tok.bos_token_id
        cached = (int(bos),) if (bos is not None and len(with_special) > len(plain)
                                 and with_special[0] == bos) else ()
        try:
            tok._priorlib_bos = cached
        except AttributeError:  # a tokenizer that refuses new attributes: recompute next time
            pass
    return cached


def encode(tok, ex, max_length: int | None, add_eos: bool = True) -> Encoded:
    """Tokenise one example into at most ``max_length`` tokens (prompt cut by :func:`prompt_ids`, which
    keeps the answer's window: training only), or whole when ``max_length`` is ``None`` (evaluation); a
    BOS token, when the model has one, comes on top and is not counted."""
    target = tok(ex.target, add_special_tokens=False)["input_ids"]
    if add_eos and tok.eos_token_id is not None:
        target = target + [tok.eos_token_id]
    if not target:
        raise ValueError(f"example {ex.meta.get('id', '?')}: empty target")
    if max_length is None:
        return Encoded(tuple(tok(ex.prompt, add_special_tokens=False)["input_ids"]), tuple(target))
    return Encoded(prompt_ids(tok, ex, max_length - len(target)), tuple(target))


def prompt_ids(tok, ex, budget: int) -> tuple[int, ...]:
    """The prompt's tokens, at most ``budget`` of them.

    If the prompt is too long, tokens are dropped from its cuttable head (``ex.cut_end``: for SQuAD the
    whole context, newlines included; when unset, everything before the first newline at or after
    ``keep_span``), as a window around ``keep_span`` (the gold answer), so the question, the "Answer:" cue
    and the answer's evidence all survive. This looks at the answer, so it is for *training* only;
    evaluation encodes whole prompts (:func:`priorlib.tasks.held_out_set`). Without ``keep_span`` the
    prompt loses tokens from its start.
    """
    if budget < 8:
        raise ValueError(f"example {ex.meta.get('id', '?')}: only {budget} tokens are left for the prompt")
    enc = tok(ex.prompt, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    if len(ids) <= budget:
        return tuple(ids)
    if ex.keep_span is None:
        return tuple(ids[len(ids) - budget:])
    a_char, b_char = ex.keep_span
    if ex.cut_end is not None:
        para_end = ex.cut_end
    else:
        para_end = ex.prompt.find("\n", b_char)
        para_end = len(ex.prompt) if para_end < 0 else para_end
    head = [i for i, (s, e) in enumerate(offsets) if e <= para_end]  # truncatable region
    tail = ids[len(head):]
    room = budget - len(tail)
    span = [i for i in head if offsets[i][1] > a_char and offsets[i][0] < b_char]
    if not span or room < len(span):
        raise ValueError(f"example {ex.meta.get('id', '?')}: {budget} prompt tokens cannot hold the answer span "
                         f"and the question ({len(tail)} tokens)")
    centre = (span[0] + span[-1]) // 2
    start = min(max(0, centre - room // 2), len(head) - room)
    start = min(start, span[0])
    start = max(start, span[-1] + 1 - room)
    return tuple(ids[start:start + room] + tail)


def collate(items: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``input_ids [B, T]`` and ``labels [B, T]`` (-100 except answer tokens)."""
    T = max(e.length for e in items)
    ids = torch.full((len(items), T), pad_id, dtype=torch.long)
    labels = torch.full((len(items), T), IGNORE, dtype=torch.long)
    for b, e in enumerate(items):
        seq = e.prompt_ids + e.target_ids
        ids[b, : len(seq)] = torch.tensor(seq)
        labels[b, len(e.prompt_ids): len(seq)] = torch.tensor(e.target_ids)
    return ids, labels


class BucketSampler:
    """Deterministic batches as a pure function of ``(seed, step)``: resuming needs no sampler state.

    Each epoch is a seeded permutation, cut into pools of ``pool`` batches; inside a pool examples are
    sorted by length (little padding), then the pool's batches are shuffled.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, pool: int = 32, bucket: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(lengths) < batch_size:
            raise ValueError(f"{len(lengths)} training examples cannot fill one batch of {batch_size}")
        self.lengths, self.batch_size, self.seed, self.pool, self.bucket = lengths, batch_size, seed, pool, bucket
        self.per_epoch = len(lengths) // batch_size
        self._cache: dict[int, list[list[int]]] = {}

    def epoch(self, e: int) -> list[list[int]]:
        if e not in self._cache:
            g = torch.Generator().manual_seed(self.seed * 100_003 + e)
            perm = torch.randperm(len(self.lengths), generator=g).tolist()[: self.per_epoch * self.batch_size]
            batches = []
            span = self.batch_size * self.pool
            for s in range(0, len(perm), span):
                chunk = perm[s: s + span]
                if self.bucket:
                    chunk.sort(key=lambda i: self.lengths[i])
                part = [chunk[j: j + self.batch_size] for j in range(0, len(chunk), self.batch_size)]
                order = torch.randperm(len(part), generator=g).tolist()
                batches.extend(part[j] for j in order)
            self._cache = {e: batches}
        return self._cache[e]

    def batch(self, step: int) -> list[int]:
        return self.epoch(step // self.per_epoch)[step % self.per_epoch]
