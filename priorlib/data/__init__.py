"""Data sources: SQuAD v1.1, DeepMind MATH arithmetic, and web text standing in for C4.

- :func:`load_squad` / :func:`squad_articles` / :func:`split_articles`  (``priorlib.data.squad``)
- :func:`generate_math` / :func:`load_math` / :data:`MATH_MODULES`     (``priorlib.data.mathgen``)
- :func:`load_web` / :func:`web_source_name`                           (``priorlib.data.web``)

Importing this package is cheap: sympy, ``mathematics_dataset``, gensim and
``datasets`` are imported only when a loader needs them. Every loader raises a
one-line ``ValueError`` (bad data) or ``FileNotFoundError`` (missing data).
"""
from .examples import Example, data_dir
from .mathgen import MATH_MODULES, generate_math, load_math
from .squad import load_squad, split_articles, squad_articles
from .web import load_web, web_corpus_stats, web_source_name

__all__ = [
    "Example",
    "data_dir",
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
