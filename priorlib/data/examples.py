"""The record every data source hands to the engine, where the data lives, and whether the hub answers.

Where the data lives: :func:`data_dir`
--------------------------------------
Every loader of :mod:`priorlib.data`, and so every entry point (``priorlib train``, ``priorlib book``,
library calls, plain ``papermill``), finds its data directory by one rule, the first that applies:

1. the explicit argument (``data_dir=`` of a loader);
2. ``$PRIORLIB_DATA`` (unset or empty: skipped);
3. ``../shared/data`` beside the repository, where "the repository" is a priorlib checkout (a folder
   holding ``pyproject.toml`` and ``priorlib/__init__.py``), looked for in this order:
   a. the working directory and its ancestors, nearest first (the repository root for the CLI and
      ``make``, ``notebooks/`` for a papermill kernel, so both find the repository above them);
   b. the checkout this package is imported from (``Path(priorlib.__file__).resolve().parents[1]``,
      an editable install), so library calls from anywhere find it too;
   the first checkout with an existing ``../shared/data`` folder wins;
4. none: the loader falls back to the Hugging Face hub, and only where the hub answers
   (:func:`hub_unreachable`).

A folder found by rule 1, 2 or 3 is used even if it lacks what a loader needs; the loader then says
which folder it read (one line), rather than silently reaching for the network.

Whether the hub answers: :func:`hub_unreachable`
------------------------------------------------
Offline mode (``PRIORLIB_OFFLINE``, ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` set to a true value)
answers at once. Otherwise one TCP connect to the hub's host (``$HF_ENDPOINT``, default
``https://huggingface.co``, or the HTTPS proxy when one is configured), bounded to
:data:`HUB_PROBE_TIMEOUT_S` seconds including name resolution, is made once per process; a hub
fallback without a network so fails in about a second with one line, instead of a retry loop.
"""
from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Example", "data_dir", "data_dir_search", "hub_unreachable", "is_offline", "one_line",
           "DATA_ENV", "HUB_PROBE_TIMEOUT_S"]

DATA_ENV = "PRIORLIB_DATA"
HUB_PROBE_TIMEOUT_S = 1.0
_OFFLINE_ENV = ("PRIORLIB_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@dataclass(frozen=True)
class Example:
    """One supervised example for prompt tuning.

    ``prompt`` is the model input, ``target`` the continuation the prompt is
    tuned to produce (it starts with a space), ``answers`` every gold answer
    (EM/F1 take the maximum over them), ``keep_span`` a character span of
    ``prompt`` that truncation must keep (``None``: no constraint), ``cut_end``
    the end of the prompt's head that truncation may cut (SQuAD: the context;
    ``None``: up to the first newline after ``keep_span``), and ``meta``
    free-form provenance that takes no part in equality.
    """

    prompt: str
    target: str
    answers: tuple[str, ...]
    keep_span: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict, compare=False)
    cut_end: int | None = None

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
        if self.cut_end is not None:
            if not (isinstance(self.cut_end, int) and 0 <= self.cut_end <= len(self.prompt)):
                raise ValueError(f"Example.cut_end {self.cut_end!r} lies outside the prompt (length {len(self.prompt)})")
            if self.keep_span is not None and self.keep_span[1] > self.cut_end:
                raise ValueError(f"Example.keep_span {self.keep_span} ends after cut_end {self.cut_end}")


def _is_checkout(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "priorlib" / "__init__.py").is_file()


def _checkouts() -> list[Path]:
    """priorlib checkouts in rule-3 order: the working directory and its ancestors, then this package's."""
    try:
        here = Path.cwd().resolve()
        found = [folder for folder in (here, *here.parents) if _is_checkout(folder)]
    except OSError:  # a deleted working directory
        found = []
    package = Path(__file__).resolve().parents[2]
    if _is_checkout(package) and package not in found:
        found.append(package)
    return found


def _beside_repository() -> Path | None:
    for checkout in _checkouts():
        shared = checkout.parent / "shared" / "data"
        if shared.is_dir():
            return shared
    return None


def data_dir(explicit=None) -> Path | None:
    """The data directory by the one discovery rule (module docstring): ``explicit``, else
    ``$PRIORLIB_DATA``, else ``../shared/data`` beside the repository, else ``None`` (the hub)."""
    if explicit is not None and str(explicit).strip():
        return Path(explicit).expanduser()
    value = os.environ.get(DATA_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    return _beside_repository()


def data_dir_search() -> str:
    """What rules 2 and 3 looked at and did not find, as one phrase for error messages."""
    places = [str(checkout.parent / "shared" / "data") for checkout in _checkouts()]
    looked = f"looked for {', '.join(places)}" if places else "no priorlib checkout in the working directory or above"
    return f"${DATA_ENV} is unset and there is no ../shared/data beside the repository ({looked})"


def one_line(text: str) -> str:
    """Collapse a message onto one line (errors raised by the loaders are one line each)."""
    return " ".join(str(text).split())


def is_offline() -> bool:
    """True when ``PRIORLIB_OFFLINE``, ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return bool(_offline_flags())


def _offline_flags() -> list[str]:
    return [name for name in _OFFLINE_ENV
            if os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")]


# (host, port) -> None (answered) or the reason it did not; one probe per process and address.
_PROBES: dict[tuple[str, int], str | None] = {}


def _hub_address() -> tuple[str, int]:
    endpoint = os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"
    url = urllib.parse.urlsplit(endpoint)
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if url.scheme == "https" else 80
    return url.hostname or "huggingface.co", url.port or default_port


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """``None`` when the Hugging Face hub can be reached, else why not (one line).

    Offline mode answers at once; otherwise one TCP connect, name resolution included, bounded to
    ``timeout`` seconds, decides it for the rest of the process.
    """
    flags = _offline_flags()
    if flags:
        return f"offline mode is set ({', '.join(flags)})"
    address = _hub_address()
    if address in _PROBES:
        return _PROBES[address]
    outcome: list[str | None] = []

    def probe():
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(one_line(err.strerror or str(err) or type(err).__name__))

    worker = threading.Thread(target=probe, name="priorlib-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)  # getaddrinfo ignores socket timeouts: bound the whole probe here
    host, port = address
    if outcome:
        reason = None if outcome[0] is None else f"{host}:{port} is unreachable: {outcome[0]}"
    else:
        reason = f"{host}:{port} did not answer within {timeout:g} s"
    _PROBES[address] = reason
    return reason
