from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SoftPromptConfig:
    """``n_tokens`` trainable vectors prepended to the input embeddings (Lester et al., 2021)."""

    n_tokens: int = 20

    def __post_init__(self):
        if int(self.n_tokens) < 0:
            raise ValueError(f"n_tokens must be a non-negative integer, got {self.n_tokens}")
        self.n_tokens = int(self.n_tokens)
