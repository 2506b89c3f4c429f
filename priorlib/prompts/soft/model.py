from __future__ import annotations

import torch
from torch import nn

from .config import SoftPromptConfig


class SoftPrompt(nn.Module):
    """Trainable ``[n_tokens, d_model]`` block prepended to ``inputs_embeds``.

    The vectors live in the space the embedding module *outputs* (for Gemma that already includes the
    sqrt(d) scale), so a prior fitted to ``arch.token_embeddings`` and these vectors are comparable.
    The parameter stays float32 whatever the model's dtype; it is cast on the way in.
    """

    def __init__(self, config: SoftPromptConfig, d_model: int, init: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        weight = torch.zeros(config.n_tokens, d_model) if init is None else init.detach().float().clone()
        if weight.shape != (config.n_tokens, d_model):
            raise ValueError(f"soft prompt init has shape {tuple(weight.shape)}, expected {(config.n_tokens, d_model)}")
        self.weight = nn.Parameter(weight)  # [n, d]

    @property
    def n_tokens(self) -> int:
        return self.config.n_tokens

    def prepend(self, embeds: torch.Tensor) -> torch.Tensor:
        """``[B, T, d] -> [B, n + T, d]``."""
        p = self.weight.to(embeds.dtype).unsqueeze(0).expand(embeds.shape[0], -1, -1)
        return torch.cat([p, embeds], dim=1)
