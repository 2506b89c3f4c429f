"""The prior registry: a prior is a small pure function plus a params dataclass.

    fn(generator, shape, reference, **params) -> Tensor[shape]      # shape = (n_tokens, d)

``sample_prior`` builds the params dataclass (whose ``__post_init__`` validates), calls ``fn`` and
returns float32. ``parse_params`` turns CLI strings (``--prior-param KEY=VALUE``) into that dataclass.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal, Union

import torch
from torch import Tensor

from .reference import Reference

__all__ = ["PriorSpec", "PRIORS", "register_prior", "get_prior", "sample_prior", "make_params",
           "parse_params", "as_generator", "check_shrinkage"]


@dataclass(frozen=True)
class PriorSpec:
    name: str
    fn: Callable[..., Tensor]  # (generator, shape, reference, **params) -> Tensor[shape]
    params: type  # a dataclass whose __post_init__ validates
    summary: str = ""  # one line for listings


PRIORS: dict[str, PriorSpec] = {}


def register_prior(name: str, params: type, summary: str = "") -> Callable:
    """Decorator: ``@register_prior("isotropic", IsotropicParams)`` above the sampling function."""
    def wrap(fn: Callable) -> Callable:
        PRIORS[name] = PriorSpec(name, fn, params, summary or (fn.__doc__ or "").strip().splitlines()[0])
        return fn
    return wrap


def get_prior(name: str) -> PriorSpec:
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of: {', '.join(PRIORS)}")
    return PRIORS[name]


def as_generator(generator: torch.Generator | int | None) -> torch.Generator:
    """A CPU ``torch.Generator``; an int is a seed, ``None`` means seed 0."""
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


def make_params(name: str, params: dict[str, Any]) -> Any:
    """The validated params dataclass of prior ``name``; unknown keys are a ValueError."""
    cls = get_prior(name).params
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"prior {name!r} has no parameter(s) {', '.join(unknown)}; "
                         f"known: {', '.join(known) or '(none)'}")
    check_finite_params(name, params)
    return cls(**params)


def check_finite_params(name: str, params: dict[str, Any]) -> None:
    """Every number among ``params`` must be finite (``sigma=inf`` would draw an all-inf prompt)."""
    for k, v in params.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"prior {name!r}: {k} must be a finite number, got {v!r}")


def sample_prior(name: str, n_tokens: int, reference: Reference,
                 generator: torch.Generator | int | None = None, *, params: Any = None, **kwargs) -> Tensor:
    """Draw ``n_tokens`` prompt vectors from prior ``name``: float32 ``[n_tokens, d]``.

    Params come either as keywords (``sigma=0.05``) or as a ready dataclass (``params=parse_params(...)``).
    """
    spec = get_prior(name)
    if params is not None and kwargs:
        raise ValueError("give prior params either as params=<dataclass> or as keywords, not both")
    p = params if params is not None else make_params(name, kwargs)
    if not isinstance(p, spec.params):
        raise ValueError(f"params for prior {name!r} must be {spec.params.__name__}, got {type(p).__name__}")
    if int(n_tokens) < 1:
        raise ValueError(f"n_tokens must be >= 1, got {n_tokens}")
    shape = (int(n_tokens), reference.dim)
    kwargs = {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}
    out = spec.fn(as_generator(generator), shape, reference, **kwargs)
    if tuple(out.shape) != shape:
        raise RuntimeError(f"prior {name!r} returned shape {tuple(out.shape)}, expected {shape}")
    return out.to(torch.float32)


# ---------------------------------------------------------------------------------------------
# CLI strings -> typed params
# ---------------------------------------------------------------------------------------------

def _convert(key: str, value: str, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in [str(a) for a in args]:
            raise ValueError(f"{key} must be one of {', '.join(map(str, args))}, got {value!r}")
        return next(a for a in args if str(a) == value)
    if origin in (Union, types.UnionType):
        if type(None) in args and value.lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in sorted((a for a in args if a is not type(None)), key=lambda a: a is str):  # str last
            try:
                return _convert(key, value, arg)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(f"cannot read {key}={value!r}: " + "; ".join(errors))
    if hint is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if hint in (int, float):
        try:
            out = hint(value)
        except ValueError:
            raise ValueError(f"{key} must be {hint.__name__}, got {value!r}") from None
        if hint is float and not math.isfinite(out):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        return out
    if hint is str:
        return value
    raise ValueError(f"parameter {key!r} cannot be given as a string (pass it from Python)")


def parse_params(name: str, strings: dict[str, str]) -> Any:
    """``{"sigma": "0.05"}`` -> ``IsotropicParams(sigma=0.05)``; unknown keys are a ValueError."""
    cls = get_prior(name).params
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    typed = {}
    for key, value in strings.items():
        if key not in known:
            raise ValueError(f"prior {name!r} has no parameter {key!r}; known: {', '.join(known) or '(none)'}")
        typed[key] = _convert(key, str(value), hints[key])
    return cls(**typed)


def check_shrinkage(shrinkage: str | float) -> None:
    """Shared validation for the ``shrinkage`` param of Gaussian-fitting priors."""
    if isinstance(shrinkage, str):
        if shrinkage not in ("auto", "none", "ledoit-wolf"):
            raise ValueError(f"shrinkage must be auto, none, ledoit-wolf or a float in [0, 1], got {shrinkage!r}")
    elif not 0.0 <= float(shrinkage) <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
