"""One way to set up a chapter: ``setup(stem, profile, **parameters)``.

    from priorlib.compendium.setup import setup
    S = setup("02_lr_priors", "cpu", priors='["isotropic", "xavier"]', seeds=None)

A notebook passes its papermill parameters straight through. ``None`` means the profile's value
(:mod:`priorlib.compendium.profiles`). Values are parsed and type-checked here, before any model loads:
a list parameter takes a list, or a YAML/JSON string of one (``'[isotropic, xavier]'``), or one scalar
(``'isotropic'`` is the one-element list); an unknown parameter or a value of the wrong type is one line
naming it. The chapter module's ``settings(profile, **values)`` then builds its settings object.
"""
from __future__ import annotations

import math

from priorlib.compendium import chapter
from priorlib.compendium.profiles import check_profile

# parameter -> (kind, element type); every chapter's papermill parameters are among these
_LIST = "list"
_SCALAR = "scalar"
_MAPPING = "mapping"
PARAMETERS: dict[str, tuple[str, type]] = {
    "model": (_SCALAR, str), "prior": (_SCALAR, str), "out_dir": (_SCALAR, str),
    "priors": (_LIST, str), "models": (_LIST, str), "arms": (_LIST, str),
    "learning_rates": (_LIST, float), "sweep_betas": (_LIST, float), "sweep_var_match": (_LIST, float),
    "seeds": (_LIST, int), "source_seeds": (_LIST, int), "deep_layers": (_LIST, int), "layers": (_LIST, int),
    "lr": (_SCALAR, float), "learning_rate": (_SCALAR, float), "source_lr": (_SCALAR, float),
    "tsne_perplexity": (_SCALAR, float),
    "steps": (_SCALAR, int), "batch_size": (_SCALAR, int), "n_tokens": (_SCALAR, int), "max_length": (_SCALAR, int),
    "eval_size": (_SCALAR, int), "max_new_tokens": (_SCALAR, int), "vae_epochs": (_SCALAR, int), "seed": (_SCALAR, int),
    "n_web": (_SCALAR, int), "n_squad": (_SCALAR, int), "n_math_per_module": (_SCALAR, int),
    "weights": (_MAPPING, float),
}


def _yaml(name: str, text: str):
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"parameter {name}: cannot parse {text!r} ({str(err).splitlines()[0]})") from None


def _element(name: str, value, kind: type):
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"parameter {name}: expected a name, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value) if kind is float else int(value)
            except ValueError:
                raise ValueError(f"parameter {name}: expected a number, got {value!r}") from None
        else:
            raise ValueError(f"parameter {name}: expected a number, got {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise ValueError(f"parameter {name}: expected an integer, got {value!r}")
        return int(value)
    if not math.isfinite(float(value)):
        raise ValueError(f"parameter {name}: expected a finite number, got {value!r}")
    return float(value)


def parse_parameter(name: str, value):
    """A papermill parameter as the chapter wants it (``None`` stays ``None``: the profile's value)."""
    if value is None:
        return None
    if name not in PARAMETERS:
        raise ValueError(f"unknown parameter {name!r}")
    shape, kind = PARAMETERS[name]
    if shape == _SCALAR:
        return str(value) if name == "out_dir" else _element(name, value, kind)
    if isinstance(value, str):
        value = _yaml(name, value)
    if shape == _MAPPING:
        if not isinstance(value, dict) or not value:
            raise ValueError(f"parameter {name}: expected a non-empty mapping, got {value!r}")
        return {str(k): [_element(f"{name}.{k}", x, kind) for x in (v if isinstance(v, (list, tuple)) else [v])]
                for k, v in value.items()}
    if not isinstance(value, (list, tuple)):
        value = [value]
    if not value:
        raise ValueError(f"parameter {name}: must not be empty")
    return [_element(name, x, kind) for x in value]


def setup(stem: str, profile: str = "cpu", **parameters):
    """The settings of chapter ``stem`` for ``profile``: what its notebook runs, checked before any compute."""
    check_profile(profile)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # a model's "Loading weights" bar would stay frozen in the static book
    module = chapter(stem)
    import inspect
    known = [n for n, p in inspect.signature(module.settings).parameters.items() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter {', '.join(map(repr, unknown))} for chapter {stem}; "
                         f"its parameters: {', '.join(known)}")
    values = {k: parse_parameter(k, v) for k, v in parameters.items()}
    return module.settings(profile, **values)
