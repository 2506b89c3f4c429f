from .config import DeepMode, DeepPromptConfig
from .model import DeepPrompt

__all__ = ["DeepMode", "DeepPromptConfig", "DeepPrompt"]
