"""Task quality: SQuAD exact match / F1 exactly as the official v1.1 evaluation script defines them
(its normalisation, F1 0 when no token is shared, also when both sides are empty; max over gold
answers), token precision and recall beside them, and exact-match accuracy for MATH.

    squad_scores("The Eiffel tower", ["Eiffel Tower", "the tower"])   # {"exact_match": 1.0, "f1": 1.0, ...}
"""
from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, squeeze white space."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _prf(pred: str, gold: str) -> tuple[float, float, float]:
    """Token precision, recall and F1 of one pair, as SQuAD v1.1's script scores F1.

    No shared token gives 0 for all three, and that includes both sides normalising to empty
    (v1.1 gives F1 0 there; SQuAD v2.0's script gives 1, which is not the rule used here). Exact
    match still counts two empty strings as equal.
    """
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0, 0.0, 0.0
    prec, rec = common / len(p), common / len(g)
    return prec, rec, 2 * prec * rec / (prec + rec)


def squad_scores(pred: str, golds) -> dict[str, float]:
    """EM, F1, precision and recall of one prediction, each the max over the gold answers."""
    golds = list(golds)
    if not golds:
        raise ValueError("a SQuAD question needs at least one gold answer")
    em = max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds)
    prf = [_prf(pred, g) for g in golds]
    return {"exact_match": em, "f1": max(x[2] for x in prf),
            "precision": max(x[0] for x in prf), "recall": max(x[1] for x in prf)}


def math_correct(pred: str, gold: str) -> float:
    """1.0 when the first line of the prediction equals the answer, white space ignored."""
    first = pred.strip().splitlines()[0] if pred.strip() else ""
    return float(first.replace(" ", "") == gold.strip().replace(" ", ""))
