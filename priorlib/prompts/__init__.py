"""Prompt methods, one folder each (``config.py`` + ``model.py``), combined by :class:`PromptedLM`."""
from .deep import DeepMode, DeepPrompt, DeepPromptConfig
from .lm import IGNORE, PromptedLM
from .soft import SoftPrompt, SoftPromptConfig

__all__ = ["SoftPrompt", "SoftPromptConfig", "DeepPrompt", "DeepPromptConfig", "DeepMode", "PromptedLM", "IGNORE"]
