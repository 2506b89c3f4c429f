"""Plain JSON values from what the chapters compute: the one cleaner behind every ``results.json``.

    json.dumps(jsonable({"loss": np.float32(1.5), "runs": df, "nan": float("nan")}), allow_nan=False)

Tables become lists of records, numpy and torch scalars and arrays become Python numbers and lists,
dataclasses become dicts of their fields, enums their values, paths strings, and non-finite floats
(NaN, inf) and missing pandas values ``None``, so the output is strict JSON.
"""
from __future__ import annotations

import dataclasses
import math
from enum import Enum
from pathlib import PurePath

import numpy as np
import pandas as pd
import torch


def jsonable(obj):
    """``obj`` as nested dicts, lists, strings, numbers, booleans and ``None`` (see the module doc)."""
    if isinstance(obj, Enum):
        return jsonable(obj.value)
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return jsonable(obj.tolist())
    if isinstance(obj, pd.DataFrame):
        return jsonable(obj.to_dict(orient="records"))
    if isinstance(obj, pd.Series):
        return jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {_key(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if obj is pd.NA or obj is pd.NaT:
        return None
    raise TypeError(f"jsonable: no JSON form for a {type(obj).__name__}: {obj!r:.80}")


def _key(k) -> str:
    """A dict key as JSON needs it: a string (enums by value, numpy scalars as their Python value)."""
    if isinstance(k, Enum):
        k = k.value
    if isinstance(k, np.generic):
        k = k.item()
    return k if isinstance(k, str) else str(k)
