from .config import SoftPromptConfig
from .model import SoftPrompt

__all__ = ["SoftPromptConfig", "SoftPrompt"]
