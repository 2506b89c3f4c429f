"""Metrics: where prompts sit relative to a reference (``placement``); task scores live beside it."""
from .placement import *  # noqa: F401,F403
from .qa import math_correct, normalize_answer, squad_scores  # noqa: F401
