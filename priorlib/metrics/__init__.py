"""Metrics: where prompts sit relative to a reference (``placement``); task scores (``qa``) live beside it.

Imported on demand: ``clusters`` (the one cluster-separation measure), ``trajectories`` (step tests
against random walks), ``shape`` (unimodality), ``answers`` (SQuAD answers against their question).
"""
from .placement import *  # noqa: F401,F403
from .qa import math_correct, normalize_answer, squad_scores  # noqa: F401
