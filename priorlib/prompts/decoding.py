"""The key/value cache of :class:`PromptedLM`'s decoding loops (imported on first decode: it needs transformers)."""
from __future__ import annotations

from transformers import DynamicCache


class PromptCache(DynamicCache):
    """A key/value cache whose attention-mask sizes count the text's keys only.

    A deep "cut" layer also caches its block's ``n`` keys, in front of the text's. HF builds one mask per
    attention type, sized from one layer's cache (the first layer of that type); when that layer holds a
    block, every layer of the type got a mask ``n`` columns wider than its own keys. Here the mask sizes and
    query offsets leave the block out, so every mask matches the text's 2-D mask; each deep layer puts its
    block's columns in front itself (see ``deep.model._extend_mask``).

    ``in_front``: layer index -> keys it caches ahead of the text (the block length on deep "cut" layers)
    that its mask sizes leave out; :meth:`PromptedLM.decode_cache` says which layers need it.
    """

    def __init__(self, config, in_front: dict[int, int]):
        super().__init__(config=config)
        self.in_front = {int(k): int(v) for k, v in in_front.items()}

    def _ahead(self, layer_idx: int) -> int:
        """Keys of ``layer_idx``'s cache that are not the text's (none until the prefill has filled it)."""
        return self.in_front.get(layer_idx, 0) if self.get_seq_length(layer_idx) > 0 else 0

    def get_mask_sizes(self, query_length: int, layer_idx: int) -> tuple[int, int]:
        kv_length, kv_offset = super().get_mask_sizes(query_length, layer_idx)
        return kv_length - self._ahead(layer_idx), kv_offset

    def get_query_offset(self, layer_idx: int = 0) -> int:
        return super().get_query_offset(layer_idx) - self._ahead(layer_idx)
