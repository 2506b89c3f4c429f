"""Data sources: SQuAD v1.1, DeepMind MATH arithmetic, and web text standing in for C4.

- :func:`data_dir`: the one data-discovery rule every loader uses (argument, ``$PRIORLIB_DATA``,
  ``../shared/data`` beside the repository, then the hub where it answers; ``priorlib.data.examples``)
- :func:`check_data`: a built-in task's data is there, checked before any model loads
- :func:`load_squad` / :func:`squad_articles` / :func:`split_articles` / :func:`squad_source`  (``priorlib.data.squad``)
- :func:`generate_math` / :func:`load_math` / :data:`MATH_MODULES`     (``priorlib.data.mathgen``)
- :func:`load_web` / :func:`web_source_name`                           (``priorlib.data.web``)

Importing this package is cheap: sympy, ``mathematics_dataset``, gensim and
``datasets`` are imported only when a loader needs them. Every loader raises a
one-line ``ValueError`` (bad data) or ``FileNotFoundError`` (missing data).
"""
from .examples import Example, data_dir, hub_unreachable
from .mathgen import MATH_MODULES, generate_math, load_math
from .squad import load_squad, split_articles, squad_articles, squad_source
from .web import load_web, web_corpus_stats, web_source_name

__all__ = [
    "Example",
    "data_dir",
    "hub_unreachable",
    "check_data",
    "squad_source",
    "load_squad",
    "squad_articles",
    "split_articles",
    "MATH_MODULES",
    "generate_math",
    "load_math",
    "load_web",
    "web_source_name",
    "web_corpus_stats",
]


def check_data(task: str, data_dir=None) -> str | None:
    """Where a built-in task's data would come from, or a one-line ``FileNotFoundError`` when it
    cannot be found (no data directory and no reachable hub). Cheap (no torch, nothing read), so
    commands call it before loading a model. ``math`` is generated locally; other tasks: ``None``."""
    if task == "squad":
        return squad_source(data_dir)
    if task == "math":
        return "generated locally (mathematics_dataset)"
    return None
