"""The record every data source hands to the engine, and the data-directory setting."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Example", "data_dir", "one_line"]


@dataclass(frozen=True)
class Example:
    """One supervised example for prompt tuning.

    ``prompt`` is the model input, ``target`` the continuation the prompt is
    tuned to produce (it starts with a space), ``answers`` every gold answer
    (EM/F1 take the maximum over them), ``keep_span`` a character span of
    ``prompt`` that truncation must keep (``None``: no constraint), and
    ``meta`` free-form provenance that takes no part in equality.
    """

    prompt: str
    target: str
    answers: tuple[str, ...]
    keep_span: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not isinstance(self.prompt, str) or not isinstance(self.target, str):
            raise TypeError("Example.prompt and Example.target must be str")
        if not isinstance(self.answers, tuple) or not all(isinstance(a, str) for a in self.answers):
            raise TypeError("Example.answers must be a tuple of str")
        if self.keep_span is not None:
            start, end = self.keep_span
            if not (0 <= start <= end <= len(self.prompt)):
                raise ValueError(
                    f"Example.keep_span {self.keep_span} lies outside the prompt (length {len(self.prompt)})"
                )


def data_dir() -> Path | None:
    """The data directory from ``$PRIORLIB_DATA``, or ``None`` when it is unset or empty."""
    value = os.environ.get("PRIORLIB_DATA", "").strip()
    return Path(value).expanduser() if value else None


def one_line(text: str) -> str:
    """Collapse a message onto one line (errors raised by the loaders are one line each)."""
    return " ".join(str(text).split())


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``PRIORLIB_OFFLINE`` is set to a true-ish value."""
    for name in ("PRIORLIB_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off"):
            return True
    return False


def resolve_data_dir(explicit) -> Path | None:
    """``explicit`` when given, else ``$PRIORLIB_DATA``, else ``None``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    return data_dir()
