"""The compendium: the machinery that runs the notebooks and builds the book, apart from the library.

    from priorlib.compendium import chapter
    C = chapter("02_lr_priors")          # the module behind notebooks/02_lr_priors.ipynb

Each notebook ``notebooks/NN_name.ipynb`` has one module ``chapters/NN_name.py`` with the same stem.
The library (``priorlib.*`` outside this package) never imports from here.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

_CHAPTERS = Path(__file__).with_name("chapters")


def chapter_names() -> list[str]:
    """The stems of every chapter module, in book order (``01_proof_of_concept``, ...)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(_CHAPTERS)]) if m.name[:2].isdigit())


def chapter(name: str) -> ModuleType:
    """The chapter module of notebook ``name`` (its stem, with or without ``.ipynb``)."""
    stem = Path(name).stem
    if stem not in chapter_names():
        raise ValueError(f"no chapter {name!r}; chapters: {', '.join(chapter_names())}")
    return importlib.import_module(f"{__name__}.chapters.{stem}")
