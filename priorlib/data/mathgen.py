"""Arithmetic questions from DeepMind's ``mathematics_dataset`` (the "MATH" task).

The generators of ``mathematics_dataset.modules.arithmetic`` are called
directly, at the *train* difficulty: ``arithmetic.train(entropy_fn)`` with the
identity entropy function, which is what the package's own ``generate.py``
builds for its ``train`` regime (``_make_entropy_fn(0, 1)``); that gives
entropy (3, 10) for most modules and (4, 16) for ``add_or_sub``. Like
``generate.sample_from_module``, questions longer than 160 characters or
answers longer than 30 characters are resampled (the package's
``generate_settings`` limits). ``generate.py`` itself is not imported because
it defines absl flags.

Compatibility shim: ``mathematics_dataset==1.0.1`` imports
``sympy.solvers.diophantine.base_solution_linear``, which current sympy only
has in the submodule ``sympy.solvers.diophantine.diophantine``. Before the
first import the attribute is copied onto the package (``importlib`` is used
because ``import sympy.solvers.diophantine as m`` binds the *function*
``diophantine``, not the package).

Determinism: each call seeds ``random`` and ``numpy.random`` (the generators
use the former; the latter is seeded for safety) and restores both states
afterwards, so calling it does not disturb the caller's random streams.

:func:`load_math` draws train / validation / test with disjoint seeds derived
from ``seed`` *and* keeps the three question sets disjoint: a question belongs
to a split by a hash of its text (80 / 10 / 10 buckets) and samples falling in
another split's bucket are skipped. Skipping by a hash of the text is
independent of the generator's randomness, so each split keeps the
generator's distribution restricted to its bucket.

Measured speed on this machine (2 cores, 2,000 samples per module, raw
:func:`generate_math`, after import): add_or_sub ~4,400/s, mul ~5,800/s,
div ~7,200/s, mixed ~2,200/s, add_sub_multiple ~3,500/s, mul_div_multiple
~2,000/s. The first call also pays ~0.4 s to import sympy and the package.
``load_math`` with the default sizes for all three splits takes ~7.5 s (the
hash buckets make validation/test draw ~10x their size).
"""
from __future__ import annotations

import hashlib
import importlib
import random
from functools import lru_cache

from .examples import Example

__all__ = ["MATH_MODULES", "generate_math", "load_math", "math_split_of", "DEFAULT_N_PER_MODULE"]

MATH_MODULES = ("add_or_sub", "mul", "div", "mixed", "add_sub_multiple", "mul_div_multiple")
SPLITS = ("train", "validation", "test")
DEFAULT_N_PER_MODULE = {"train": 1000, "validation": 100, "test": 200}
# Hash buckets (out of 100) that decide which split a question text belongs to.
_BUCKETS = {"train": (0, 80), "validation": (80, 90), "test": (90, 100)}
# Stop a rejection loop that cannot fill its quota (e.g. a module with few distinct questions).
_MAX_DRAWS_PER_SAMPLE = 200


def _apply_sympy_shim() -> None:
    package = importlib.import_module("sympy.solvers.diophantine")
    if not hasattr(package, "base_solution_linear"):
        inner = importlib.import_module("sympy.solvers.diophantine.diophantine")
        package.base_solution_linear = inner.base_solution_linear


@lru_cache(maxsize=1)
def _modules():
    """``(generators, max_question_len, max_answer_len)`` at train difficulty."""
    _apply_sympy_shim()
    try:
        arithmetic = importlib.import_module("mathematics_dataset.modules.arithmetic")
        settings = importlib.import_module("mathematics_dataset.generate_settings")
    except Exception as exc:
        raise ImportError(
            f"could not import mathematics_dataset ({type(exc).__name__}: {exc}); install mathematics-dataset==1.0.1"
        ) from None
    generators = arithmetic.train(lambda entropy_range: entropy_range)
    return generators, settings.MAX_QUESTION_LENGTH, settings.MAX_ANSWER_LENGTH


def math_split_of(question: str) -> str:
    """The split (``train`` / ``validation`` / ``test``) a question text belongs to in :func:`load_math`."""
    bucket = int(hashlib.sha1(question.encode("utf-8")).hexdigest(), 16) % 100
    for name, (lo, hi) in _BUCKETS.items():
        if lo <= bucket < hi:
            return name
    raise AssertionError(bucket)  # unreachable


def _check_module(module: str) -> None:
    if module not in MATH_MODULES:
        raise ValueError(f"unknown MATH module {module!r}; choose from {', '.join(MATH_MODULES)}")


def _generate(module: str, n: int, seed: int, keep_split: str | None = None) -> list[Example]:
    _check_module(module)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    generators, max_q, max_a = _modules()
    generator = generators[module]
    import numpy as np

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        random.seed(seed)
        np.random.seed(seed % (2**32))
        out: list[Example] = []
        draws = 0
        while len(out) < n:
            draws += 1
            if draws > _MAX_DRAWS_PER_SAMPLE * max(n, 1):
                raise ValueError(f"MATH module {module!r}: could not draw {n} questions for split {keep_split!r}")
            problem = generator()
            question, answer = str(problem.question), str(problem.answer)
            if len(question) > max_q or len(answer) > max_a:
                continue
            if keep_split is not None and math_split_of(question) != keep_split:
                continue
            out.append(
                Example(
                    prompt=f"Question: {question}\nAnswer:",
                    target=f" {answer}",
                    answers=(answer,),
                    meta={"module": module},
                )
            )
        return out
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def generate_math(module: str, n: int, seed: int = 0) -> list[Example]:
    """``n`` train-difficulty questions from one arithmetic ``module``, deterministic per ``seed``.

    ``prompt = "Question: {q}\\nAnswer:"``, ``target = " {a}"``, ``answers = (a,)``
    with ``a`` exactly as the generator prints it (``"-12"``, ``"0.35"``,
    ``"-6/11"``), ``meta = {"module": module}``.
    """
    return _generate(module, n, seed)


def _derived_seed(seed: int, split: str, module: str) -> int:
    # Distinct for every (seed, split, module) with seed >= 0: no two splits share a stream.
    return (int(seed) * len(SPLITS) + SPLITS.index(split)) * 64 + MATH_MODULES.index(module)


def load_math(
    split: str = "train",
    *,
    modules=MATH_MODULES,
    n_per_module: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """``n_per_module`` questions from each of ``modules`` for one split, modules in the given order.

    ``n_per_module=None`` uses :data:`DEFAULT_N_PER_MODULE` (train 1,000,
    validation 100, test 200). Splits use disjoint seeds derived from ``seed``
    and disjoint question texts (see the module docstring).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown MATH split {split!r}; choose one of {', '.join(SPLITS)}")
    if isinstance(modules, str):
        modules = (modules,)
    modules = tuple(modules)
    if not modules:
        raise ValueError("load_math: modules is empty")
    for m in modules:
        _check_module(m)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    n = DEFAULT_N_PER_MODULE[split] if n_per_module is None else n_per_module
    out: list[Example] = []
    for module in modules:
        out.extend(_generate(module, n, _derived_seed(seed, split, module), keep_split=split))
    return out
