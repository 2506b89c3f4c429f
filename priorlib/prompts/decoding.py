"""The key/value cache and the past-the-window attention masks of :class:`PromptedLM`'s decoding loops
(imported on first decode: it needs transformers)."""
from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer


class _KeepAllSlidingLayer(DynamicLayer):
    """A sliding-window layer's cache that keeps every key. HF's ``DynamicSlidingWindowLayer`` keeps the
    last ``window - 1`` *columns*; in a batch laid out ``[prompt | padding | text]`` a short row's BOS and
    prompt are further back than that while still inside its window, and a deep block in front of the
    text is dropped at once. Here the mask applies the window (:func:`masks_by_position`). Until the
    window is passed it holds, and reports, exactly what ``DynamicSlidingWindowLayer`` does."""

    is_sliding = True  # HF still sizes the sliding mask from the first such layer


class PromptCache(DynamicCache):
    """A key/value cache for decoding with prompts.

    Sliding-window layers keep every key (:class:`_KeepAllSlidingLayer`). A deep "cut" layer also caches
    its block's ``n`` keys, in front of the text's. HF builds one mask per attention type, sized from one
    layer's cache (the first layer of that type); when that layer holds a block, every layer of the type
    got a mask ``n`` columns wider than its own keys. Here the mask sizes and query offsets of the layers
    in ``in_front`` leave the block out, so the mask matches the text's 2-D mask; each deep layer puts its
    block's columns in front itself (see ``deep.model._extend_mask``).

    ``in_front``: layer index -> keys it caches ahead of the text (the block length on deep "cut" layers)
    that its mask sizes leave out; :meth:`PromptedLM.decode_cache` says which layers need it.
    """

    def __init__(self, config, in_front: dict[int, int]):
        super().__init__(config=config)
        self.layers = [_KeepAllSlidingLayer() if isinstance(layer, DynamicSlidingWindowLayer) else layer
                       for layer in self.layers]
        self.in_front = {int(k): int(v) for k, v in in_front.items()}

    def _ahead(self, layer_idx: int) -> int:
        """Keys of ``layer_idx``'s cache that are not the text's (none until the prefill has filled it)."""
        return self.in_front.get(layer_idx, 0) if self.get_seq_length(layer_idx) > 0 else 0

    def get_mask_sizes(self, query_length: int, layer_idx: int) -> tuple[int, int]:
        kv_length, kv_offset = super().get_mask_sizes(query_length, layer_idx)
        return kv_length - self._ahead(layer_idx), kv_offset

    def get_query_offset(self, layer_idx: int = 0) -> int:
        return super().get_query_offset(layer_idx) - self._ahead(layer_idx)


def masks_by_position(config, keep: torch.Tensor, pos: torch.Tensor, n_query: int, window: int,
                      dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """One 4-D attention mask per layer type, ``{type: [B, 1, Q, K]}``, for a model's ``attention_mask``
    argument once the columns no longer fit in the sliding window.

    ``keep [B, K]``: 1 at the text's real columns (the whole cache so far plus the queries), 0 at padding;
    ``pos [B, K]``: each column's position; the queries are the last ``n_query`` columns. A query sees the
    real columns at or before its own; on sliding layers only those less than ``window`` *positions* back
    (HF counts columns, which in a padded row reach past the padding's width too early). Deep blocks are
    not columns here: each deep layer adds its own in front, visible to every query, as in the forward.
    """
    impl = config._attn_implementation
    if impl not in ("sdpa", "eager"):
        raise ValueError(f"decoding past the sliding window builds sdpa or eager masks; the model uses {impl!r}")
    B, K = keep.shape
    col = torch.arange(K, device=keep.device)  # [K]
    causal = col[None, :] <= col[K - n_query:, None]  # [Q, K]
    full = causal[None] & keep.bool()[:, None, :]  # [B, Q, K]
    near = (pos[:, K - n_query:, None] - pos[:, None, :]) < window  # [B, Q, K]
    by_kind = {"full_attention": full, "sliding_attention": full & near}
    types = set(getattr(config, "layer_types", None) or ())
    if not types <= set(by_kind):
        raise ValueError(f"decoding past the sliding window knows full and sliding attention, not {sorted(types - set(by_kind))}")
    out = {}
    for t in types:
        m = by_kind[t][:, None]  # [B, 1, Q, K]: True = attend
        out[t] = m if impl == "sdpa" else torch.where(m, torch.zeros((), dtype=dtype, device=m.device),
                                                      torch.finfo(dtype).min)
    return out
