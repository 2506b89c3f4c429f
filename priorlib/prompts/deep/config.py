from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class DeepMode(str, Enum):
    CUT = "cut"      # the paper's variant: prepend to a layer's input, cut the same positions from its output
    CARRY = "carry"  # prompt positions travel through every layer; selected layers overwrite their states


@dataclass
class DeepPromptConfig:
    """Activation-level prompts on selected decoder layers.

    ``layers`` may be negative (``-3`` is the third from the top) and is resolved against the model.
    ``token_prompt`` adds the usual ``n_tokens`` soft prompt at the input, as in the paper; the
    "carry" mode needs it (its prompt positions must exist from the input on).
    """

    n_tokens: int = 20
    layers: tuple[int, ...] = (-3, -2, -1)
    mode: DeepMode = DeepMode.CUT
    token_prompt: bool = True
    _resolved: tuple[int, ...] = field(default=(), repr=False)

    def __post_init__(self):
        if int(self.n_tokens) < 0:
            raise ValueError(f"n_tokens must be a non-negative integer, got {self.n_tokens}")
        self.n_tokens = int(self.n_tokens)
        try:
            self.mode = DeepMode(self.mode)
        except ValueError:
            raise ValueError(f"deep mode must be one of {[m.value for m in DeepMode]}, got {self.mode!r}") from None
        self.layers = tuple(int(i) for i in self.layers)
        if not self.layers:
            raise ValueError("a deep prompt needs at least one layer")
        if self.mode is DeepMode.CARRY and not self.token_prompt:
            raise ValueError("deep mode 'carry' needs token_prompt=True (its prompt positions start at the input)")
