"""Verdicts: each claim of the paper against what a chapter measured, and the one ``results.json`` writer.

    from priorlib.compendium import decide, verdicts as V
    sep = decide.cluster(x_math, x_nlp, seed=0)               # priorlib.compendium.decide -> priorlib.protocol
    vs = [V.Verdict("MATH activations form their own cluster", sep.reason, sep.outcome, claim_id="math-own-cluster")]
    V.table(vs)                                           # the closing table of a notebook
    V.write_results(out_dir, {"runs": rows}, vs, notebook="05_math_interpolation", profile="cpu",
                    model="smollm2-135m", settings=s)     # -> <out_dir>/results.json

Every notebook writes its ``results.json`` through :func:`write_results`, in one schema::

    {"notebook": "05_math_interpolation", "profile": "cpu", "model": "smollm2-135m", "settings": {...},
     "verdicts": [{"claim": ..., "measured": ..., "outcome": "agrees", "by_model": {}, "claim_id": ...}, ...],
     ...the chapter's numbers}

``priorlib book`` keeps it in the executed notebook's metadata, and the claims page
(:mod:`priorlib.compendium.claims`) reads the verdicts back with :meth:`Verdict.from_dict`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from priorlib.compendium.jsonable import jsonable
from priorlib.compendium.paths import portable
from priorlib.protocol import Outcome  # the outcomes of every verdict: agrees, contradicts, inconclusive, ...

HEADER_FIELDS = ("notebook", "profile", "model", "settings", "verdicts")
COLUMNS = {"claim": "paper's observation", "measured": "what we measured", "outcome": "verdict"}


LEGACY_OUTCOMES = {"disagrees": "contradicts", "not tested": "inconclusive"}  # results.json before the protocol


def outcome_of(agrees) -> Outcome:
    """A rule that is not a comparison of arms (a rank correlation, a collapse diagnostic): true ->
    ``agrees``, false -> ``contradicts``, ``None`` (the rule could not be applied) -> ``inconclusive``."""
    if agrees is None:
        return Outcome.INCONCLUSIVE
    return Outcome.AGREES if agrees else Outcome.CONTRADICTS


def _outcome(value, what: str) -> Outcome:
    try:
        return Outcome(value)
    except ValueError:
        raise ValueError(f"{what} must be one of {[o.value for o in Outcome]}, got {value!r}") from None


def combined(by_model: dict[str, Outcome]) -> Outcome:
    """The outcome of a claim checked on several models: AGREES only when it agrees on every one; the
    first outcome that is not evidence (INCONCLUSIVE, NOT_TESTABLE, ...) when there is one; else CONTRADICTS."""
    outcomes = [_outcome(o, "a model's outcome") for o in by_model.values()]
    if not outcomes:
        raise ValueError("combined: needs at least one model's outcome")
    undecided = [o for o in outcomes if not o.is_evidence]
    if undecided:
        return undecided[0]
    return Outcome.AGREES if all(o is Outcome.AGREES for o in outcomes) else Outcome.CONTRADICTS


def replicates(by_model: dict[str, Outcome]) -> Outcome:
    """Whether a claim comes out the same on every model: an undecided model's outcome when there is one
    (as :func:`combined`); else AGREES when all models give the same outcome, CONTRADICTS when they differ.

        replicates({"A": "agrees", "B": "agrees"})        # AGREES (so would two CONTRADICTS)
        replicates({"A": "agrees", "B": "contradicts"})   # CONTRADICTS
    """
    outcomes = [_outcome(o, "a model's outcome") for o in by_model.values()]
    if len(outcomes) < 2:
        raise ValueError("replicates: needs at least two models' outcomes")
    undecided = [o for o in outcomes if not o.is_evidence]
    if undecided:
        return undecided[0]
    return Outcome.AGREES if len(set(outcomes)) == 1 else Outcome.CONTRADICTS


def holds_on(by_model: dict[str, Outcome]) -> str:
    """On which models a claim holds: ``both`` (``all`` for more than two), ``neither`` (``none``),
    ``<model> only`` (``<a> and <b> only``), or the undecided outcome (``inconclusive``, ...)."""
    outcome = combined(by_model)
    if not outcome.is_evidence:
        return outcome.value
    holds = [m for m, o in by_model.items() if _outcome(o, "a model's outcome") is Outcome.AGREES]
    if len(holds) == len(by_model):
        return "both" if len(by_model) == 2 else "all"
    if not holds:
        return "neither" if len(by_model) == 2 else "none"
    return " and ".join(holds) + " only"


@dataclass
class Verdict:
    """One claim of the paper, what we measured, and the outcome; ``by_model`` when it was checked on several.

        Verdict("Prompts stay near their prior", "100% of runs moved less than the gap", Outcome.AGREES)
        Verdict.across("Tasks form clusters (on both models)", "A: ... B: ...",
                       {"SmolLM2": Outcome.AGREES, "Gemma": Outcome.CONTRADICTS})   # outcome CONTRADICTS
    """
    claim: str
    measured: str
    outcome: Outcome
    by_model: dict[str, Outcome] = field(default_factory=dict)  # model -> its own outcome (chapter 09)
    claim_id: str | None = None  # the entry of priorlib.compendium.paper.CLAIMS this verdict tests

    def __post_init__(self):
        for name in ("claim", "measured"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"Verdict.{name} must be a non-empty string, got {getattr(self, name)!r}")
        self.outcome = _outcome(self.outcome, "Verdict.outcome")
        self.by_model = {str(m): _outcome(o, f"Verdict.by_model[{m!r}]") for m, o in dict(self.by_model).items()}
        if self.by_model and self.outcome is not combined(self.by_model):
            models = ", ".join(f"{m}: {o.value}" for m, o in self.by_model.items())
            raise ValueError(f"Verdict.outcome {self.outcome.value!r} contradicts its models' outcomes ({models}), "
                             f"which combine to {combined(self.by_model).value!r}")

    @classmethod
    def across(cls, claim: str, measured: str, by_model: dict, claim_id: str | None = None) -> "Verdict":
        """A claim checked on several models; its outcome is :func:`combined` from theirs."""
        return cls(claim, measured, combined(by_model), by_model, claim_id)

    @property
    def label(self) -> str:
        """The verdict as tables show it: the outcome, or on which models the claim holds (:func:`holds_on`)."""
        return holds_on(self.by_model) if self.by_model else self.outcome.value

    def to_dict(self) -> dict:
        return {"claim": self.claim, "measured": self.measured, "outcome": self.outcome.value,
                "by_model": {m: o.value for m, o in self.by_model.items()}, "claim_id": self.claim_id}

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        """A verdict from the ``results.json`` schema (the keys of :meth:`to_dict`, nothing else; results
        written before the claim ids lack ``claim_id`` and read as ``None``); the outcomes of results
        written before the protocol are read as :data:`LEGACY_OUTCOMES` says."""
        keys = {"claim", "measured", "outcome", "by_model"}
        if not isinstance(d, dict) or not keys <= set(d) <= keys | {"claim_id"}:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"a verdict needs exactly the keys {sorted(keys)} (and optionally claim_id), got {got}")

        def read(o):
            return LEGACY_OUTCOMES.get(o, o)
        return cls(d["claim"], d["measured"], read(d["outcome"]), {m: read(o) for m, o in d["by_model"].items()},
                   d.get("claim_id"))


def frame(verdicts: list[Verdict]) -> pd.DataFrame:
    """One row per verdict under readable headers (paper's observation, what we measured, verdict)."""
    return pd.DataFrame([{COLUMNS["claim"]: v.claim, COLUMNS["measured"]: v.measured, COLUMNS["outcome"]: v.label}
                         for v in verdicts], columns=list(COLUMNS.values()))


def table(verdicts: list[Verdict]):
    """The closing table of a notebook: :func:`frame` shown the book's way (readable headers, no row index,
    left-aligned, scrolling inside the column when wide; :mod:`priorlib.compendium.tables`)."""
    from priorlib.compendium.tables import result_table
    return result_table(frame(verdicts))


def write_results(out_dir, results: dict, verdicts: list[Verdict], *, notebook: str, profile: str, model: str,
                  settings) -> Path:
    """Write ``<out_dir>/results.json`` atomically, as strict JSON (:func:`~priorlib.compendium.jsonable.jsonable`):
    the header (``notebook``: the chapter's stem, ``profile``, ``model``, ``settings``), the ``verdicts``,
    then the chapter's ``results`` (which must not reuse a header key)."""
    from priorlib.checkpoint import atomic_write_text
    if not verdicts or not all(isinstance(v, Verdict) for v in verdicts):
        raise TypeError("write_results: verdicts must be a non-empty list of Verdict")
    clash = sorted(set(results) & set(HEADER_FIELDS))
    if clash:
        raise ValueError(f"write_results: results must not set the header fields {clash}")
    doc = {"notebook": notebook, "profile": profile, "model": model, "settings": settings,
           "verdicts": [v.to_dict() for v in verdicts], **results}
    doc = jsonable(doc)
    if isinstance(doc.get("settings"), dict) and doc["settings"].get("out_dir"):
        doc["settings"]["out_dir"] = portable(doc["settings"]["out_dir"])
    text = json.dumps(doc, indent=1, allow_nan=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    atomic_write_text(path, text)
    return path


def fmt(x, nd: int = 3) -> str:
    """A number as the measured text shows it: ``nd`` significant figures, "n/a" when missing or not finite."""
    import math
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.{nd}g}"
