"""One way to set up a chapter: ``setup(stem, profile, **parameters)``.

    from priorlib.compendium.setup import setup
    S = setup("02_lr_priors", "cpu", priors='["isotropic", "xavier"]', seeds=None)

A notebook passes its papermill parameters straight through. ``None`` means the profile's value
(:mod:`priorlib.compendium.profiles`). Values are parsed and type-checked here, before any model loads:
a list parameter takes a list, or a YAML/JSON string of one (``'[isotropic, xavier]'``), or one scalar
(``'isotropic'`` is the one-element list); an unknown parameter or a value of the wrong type is one line
naming it and the value. The chapter module's ``settings(profile, **values)`` then builds its settings
object, and the SQuAD data every chapter reads is looked up (:func:`priorlib.data.check_data`, the one
discovery rule: ``$PRIORLIB_DATA``, else ``../shared/data`` beside the checkout, else the hub), so a
notebook executed by plain papermill finds the data as ``priorlib book`` does, or stops in its setup cell
with one line saying what to set.

What papermill passes: ``papermill NB out.ipynb -p priors '["isotropic", "xavier"]'`` gives the string
(parsed here), ``-p priors isotropic`` the string ``'isotropic'`` (one prior), ``-p seeds 3`` the int 3
(one seed), ``-y 'priors: [isotropic, xavier]'`` a real list. All of them are accepted.
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


def _elements(name: str, values, kind: type, given) -> list:
    """Every element of a list parameter; a bad one names the parameter, the element and the whole value."""
    out = []
    for x in values:
        try:
            out.append(_element(name, x, kind))
        except ValueError as err:
            if isinstance(given, str) and given.strip() == str(x):  # a bare scalar: the element is the value
                raise
            raise ValueError(f"{err} in {given!r}") from None
    return out


def parse_parameter(name: str, value):
    """A papermill parameter as the chapter wants it (``None`` stays ``None``: the profile's value).

    A list parameter (``PARAMETERS[name][0] == "list"``) takes a list or tuple, a YAML/JSON string of one,
    or one scalar (the one-element list); its elements are checked against the parameter's type (names:
    non-empty strings; ``int``: integral numbers; ``float``: finite numbers; numeric strings such as YAML's
    ``1e-3`` are converted). An empty list, a bad element or unparsable text: one-line ``ValueError``
    naming the parameter and the value.
    """
    if value is None:
        return None
    if name not in PARAMETERS:
        raise ValueError(f"unknown parameter {name!r}")
    shape, kind = PARAMETERS[name]
    if shape == _SCALAR:
        return str(value) if name == "out_dir" else _element(name, value, kind)
    given = value
    if isinstance(value, str):
        value = _yaml(name, value)
    if shape == _MAPPING:
        if not isinstance(value, dict) or not value:
            raise ValueError(f"parameter {name}: expected a non-empty mapping, got {given!r}")
        return {str(k): _elements(f"{name}.{k}", v if isinstance(v, (list, tuple)) else [v], kind, given)
                for k, v in value.items()}
    if isinstance(value, dict):
        raise ValueError(f"parameter {name}: expected a list, got the mapping {given!r}")
    if not isinstance(value, (list, tuple)):
        value = [value]
    if not value:
        raise ValueError(f"parameter {name}: must not be empty (got {given!r}; None means the profile's value)")
    return _elements(name, value, kind, given)


# Every chapter reads SQuAD (01 its prompts, 02-04 and 07-09 train on it, 05-06 as a reference cloud).
CHAPTER_DATA = ("squad",)


def check_chapter_data(stem: str) -> None:
    """The chapter's data can be found (cheap: nothing is read), else one line saying what to set."""
    from priorlib.data import check_data
    for task in CHAPTER_DATA:
        try:
            check_data(task)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"chapter {stem}: {err}") from None


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
    settings = module.settings(profile, **values)
    check_chapter_data(stem)
    return settings
