from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ... import arch
from .config import DeepMode, DeepPromptConfig


def _extend_mask(mask: torch.Tensor | None, n: int, prefill: bool) -> torch.Tensor | None:
    """Make room for ``n`` prompt keys at the front of a 4-D attention mask ``[B, 1, Q, K]``.

    Prompt keys are visible to every query. On a prefill the ``n`` prompt queries are added too; they
    see each other causally and nothing after them. Works for boolean masks (True = attend) and for
    additive float masks (0 = attend, large negative = masked). ``None`` (pure causal) stays ``None``.
    """
    if mask is None:
        return None
    if mask.dim() != 4:
        raise ValueError(f"deep prompts expect a 4-D attention mask, got shape {tuple(mask.shape)}")
    B, H, Q, K = mask.shape
    is_bool = mask.dtype == torch.bool
    keep = torch.ones((), dtype=torch.bool, device=mask.device) if is_bool else torch.zeros((), dtype=mask.dtype, device=mask.device)
    block = torch.finfo(mask.dtype).min if not is_bool else False
    left = keep.expand(B, H, Q, n)
    out = torch.cat([left, mask], dim=-1)  # [B, H, Q, n + K]
    if not prefill:
        return out
    tri = torch.ones(n, n, dtype=torch.bool, device=mask.device).tril()
    top_left = tri if is_bool else torch.where(tri, 0.0, block).to(mask.dtype)
    top = torch.cat([top_left.expand(B, H, n, n),
                     torch.full((B, H, n, K), block, dtype=mask.dtype, device=mask.device)], dim=-1)
    return torch.cat([top, out], dim=-2)  # [B, H, n + Q, n + K]


class DeepPrompt(nn.Module):
    """Per-layer trainable ``[n_tokens, d_model]`` blocks, attached to the frozen model with hooks.

    *cut*  (the paper's): before layer k the block is prepended to the layer's input, with its own
    rotary positions just before the sequence's first position; after layer k the same ``n`` positions
    are cut from the output, so no other layer sees them. Cached decoding works: on a decode step the
    block is already in layer k's key/value cache and only the mask needs ``n`` extra columns.

    *carry*: the ``n`` positions of the token-level soft prompt, rows ``start .. start + n - 1`` of the
    sequence (after the ``start`` BOS rows, see :meth:`attached`), are overwritten by the block at the input
    of layer k; they then flow on through the upper layers like any token.
    """

    def __init__(self, config: DeepPromptConfig, model: nn.Module, init: dict[int, torch.Tensor] | None = None):
        super().__init__()
        self.config = config
        self.layer_ids = arch.resolve_layers(model, config.layers)
        d = arch.d_model(model)
        self.weights = nn.ParameterDict()
        for i in self.layer_ids:
            w = torch.zeros(config.n_tokens, d) if init is None else init[i].detach().float().clone()
            if w.shape != (config.n_tokens, d):
                raise ValueError(f"deep prompt init for layer {i} has shape {tuple(w.shape)}, expected {(config.n_tokens, d)}")
            self.weights[str(i)] = nn.Parameter(w)  # [n, d]

    @property
    def n_tokens(self) -> int:
        return self.config.n_tokens

    def block(self, layer: int) -> nn.Parameter:
        return self.weights[str(layer)]

    def cached_in_front(self) -> dict[int, int]:
        """Keys each layer's decoding cache holds in front of the text's: the block, on "cut" layers
        ("carry" rewrites the soft prompt's own rows and adds none)."""
        return {i: self.n_tokens for i in self.layer_ids} if self.config.mode is DeepMode.CUT else {}

    @contextmanager
    def attached(self, model: nn.Module, start: int = 0):
        """Hook the blocks into ``model``'s layers. ``start``: rows in front of the soft prompt (the BOS
        token(s)), which "carry" leaves alone; "cut" puts its block in front of everything."""
        handles = []
        blocks = arch.layers(model)
        n = self.n_tokens
        for i in self.layer_ids:
            w = self.block(i)
            decoding = {}
            rope = arch.rope_for(model, i)

            def pre(mod, args, kwargs, i=i, w=w, decoding=decoding, rope=rope):
                h = args[0] if args else kwargs["hidden_states"]  # [B, L, d]
                cache = kwargs.get("cache")
                dec = cache is not None and cache.get_seq_length(i) > 0
                decoding["now"] = dec
                if self.config.mode is DeepMode.CARRY:
                    if not dec:
                        p = w.to(h.dtype).unsqueeze(0).expand(h.shape[0], -1, -1)  # [B, n, d]
                        h = torch.cat([h[:, :start], p, h[:, start + n:]], dim=1)  # [B, L, d]: BOS rows kept
                else:
                    mask = kwargs.get("attention_mask")
                    if dec and mask is not None:
                        # the mask's columns follow the text's 2-D mask from column 0. HF sizes a type's
                        # mask from its first layer's cache; where that is a deep layer it may count the block
                        # too (masked columns padded at the end: a plain DynamicCache, or PromptedLM's cache
                        # where every layer of the type is deep). Keep the text's columns; the block's go in
                        # front below.
                        mask = mask[..., : cache.get_seq_length(i) + h.shape[1] - n]
                    kwargs["attention_mask"] = _extend_mask(mask, n, prefill=not dec)
                    if not dec:
                        p = w.to(h.dtype).unsqueeze(0).expand(h.shape[0], -1, -1)
                        h = torch.cat([p, h], dim=1)  # [B, n + L, d]
                        cos, sin = kwargs["position_embeddings"]  # [b, L, head_dim]
                        pos = kwargs.get("position_ids")
                        first = pos[:, :1] if pos is not None else torch.zeros(1, 1, dtype=torch.long, device=h.device)
                        ppos = first + torch.arange(-n, 0, device=h.device)  # [b, n], just before the sequence
                        pcos, psin = rope(cos, ppos)
                        b = max(cos.shape[0], pcos.shape[0])
                        kwargs["position_embeddings"] = (
                            torch.cat([pcos.expand(b, -1, -1), cos.expand(b, -1, -1)], dim=1),
                            torch.cat([psin.expand(b, -1, -1), sin.expand(b, -1, -1)], dim=1))
                        if pos is not None:
                            kwargs["position_ids"] = torch.cat([ppos.expand(pos.shape[0], -1), pos], dim=1)
                if args:
                    args = (h,) + tuple(args[1:])
                else:
                    kwargs["hidden_states"] = h
                return args, kwargs

            def post(mod, args, kwargs, out, decoding=decoding):
                if self.config.mode is DeepMode.CARRY or decoding.get("now"):
                    return out
                if isinstance(out, tuple):
                    return (out[0][:, n:],) + tuple(out[1:])
                return out[:, n:]

            handles.append(blocks[i].register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(blocks[i].register_forward_hook(post, with_kwargs=True))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
