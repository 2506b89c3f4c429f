"""SQuAD EM / F1 (priorlib.metrics.qa) against a separate re-implementation of the v1.1 script's rules.

The reference below is written from the script's definition, not from the library's code: lower-case;
drop ASCII punctuation; replace each article a/an/the that stands between regex word boundaries
(a word character is ``str.isalnum()`` or ``_``) with a space; split on white space (``str.isspace``);
F1 from the shared-token count, 0 when nothing is shared (so two empty answers score F1 0 but EM 1);
the max over gold answers. It scans characters by hand, so it shares no regex with the library.
Every comparison is exact (``==``) on 3,000 generated pairs.
"""
import random
import string

import pytest

from priorlib.metrics.qa import normalize_answer, squad_scores

N_PAIRS = 3000


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _drop_articles(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        for art in ("a", "an", "the"):  # the order the script's alternation tries them
            end = i + len(art)
            if (text.startswith(art, i) and (i == 0 or not _is_word(text[i - 1]))
                    and (end == len(text) or not _is_word(text[end]))):
                out.append(" ")
                i = end
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[str]:
    toks, cur = [], []
    for ch in text:
        if ch.isspace():
            if cur:
                toks.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if cur:
        toks.append("".join(cur))
    return toks


def ref_normalise(s: str) -> str:
    lowered = s.lower()
    no_punct = "".join(ch for ch in lowered if ch not in string.punctuation)
    return " ".join(_tokens(_drop_articles(no_punct)))


def ref_f1(pred: str, gold: str) -> float:
    p, g = _tokens(ref_normalise(pred)), _tokens(ref_normalise(gold))
    counts = {}
    for t in g:
        counts[t] = counts.get(t, 0) + 1
    same = 0
    for t in p:
        if counts.get(t, 0) > 0:
            counts[t] -= 1
            same += 1
    if same == 0:
        return 0
    precision, recall = 1.0 * same / len(p), 1.0 * same / len(g)
    return (2 * precision * recall) / (precision + recall)


def ref_scores(pred: str, golds: list[str]) -> tuple[float, float]:
    em = max(float(ref_normalise(pred) == ref_normalise(g)) for g in golds)
    return em, max(ref_f1(pred, g) for g in golds)


# ----------------------------------------------------------------------------- adversarial pairs

ARTICLES = ["a", "an", "the", "A", "An", "THE", "The", "tHe", "aN"]
PUNCT = [".", ",", "!?", "...", "-", "'", "'s", "\"", "(", ")", "[a]", "--", "&", "$", "%", "#", "@", "_"]
UNICODE = ["café", "naïve", "東京", "Ωmega", "İstanbul", "straße", "e\u0301", "—", "«", "»", "¿", "€", "°",
           "½", "²", "ǅ", "ﬁ", "Ⅻ", "٣", "а", "the—end", "l'an", "an—", "—a—", "_the_", "théâtre"]
WHITE = [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u3000", "\x1c", "\u200b", "\v", "\f"]
WORDS = ["paris", "Paris", "1889", "eiffel", "tower", "tower", "x", "and", "an0", "theatre", "athe", "e", "n"]


def _piece(rng: random.Random) -> str:
    pool = rng.choice([ARTICLES, PUNCT, UNICODE, WORDS, WORDS])
    return rng.choice(pool)


def _text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.08:
        return ""
    if kind < 0.16:  # only punctuation
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 4)))
    if kind < 0.26:  # only articles
        return rng.choice(WHITE).join(rng.choice(ARTICLES) for _ in range(rng.randint(1, 4)))
    if kind < 0.32:  # only white space
        return "".join(rng.choice(WHITE) for _ in range(rng.randint(1, 3)))
    parts = [_piece(rng) for _ in range(rng.randint(1, 6))]
    if rng.random() < 0.3:  # repeated tokens
        parts += [rng.choice(parts)] * rng.randint(1, 3)
        rng.shuffle(parts)
    glue = (lambda: rng.choice(WHITE)) if rng.random() < 0.7 else (lambda: rng.choice(["", "-", ".", " "]))
    return "".join(p + glue() for p in parts)


def _pairs(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        golds = [_text(rng) for _ in range(rng.choice([1, 1, 2, 3]))]
        r = rng.random()
        if r < 0.15:  # exact copies
            pred = rng.choice(golds)
        elif r < 0.35:  # a gold with more text around it: partial overlap
            pred = rng.choice([_text(rng), ""]) + rng.choice(WHITE) + rng.choice(golds) + rng.choice(WHITE) + _text(rng)
        else:
            pred = _text(rng)
        if rng.random() < 0.15:  # near copies: case, punctuation or an article changed
            pred = rng.choice([pred.upper(), pred + ".", "The " + pred, pred.replace(" ", "\t")])
        out.append((pred, golds))
    return out


@pytest.fixture(scope="module")
def pairs():
    return _pairs(N_PAIRS)


def test_pairs_cover_the_edge_cases(pairs):
    assert len(pairs) >= 2000
    norm = [(ref_normalise(p), [ref_normalise(g) for g in gs]) for p, gs in pairs]
    assert sum(p == "" and "" in gs for p, gs in norm) >= 300           # both sides empty (557)
    assert sum((p == "") != ("" in gs) for p, gs in norm) >= 500        # one side empty (1329)
    f1 = [ref_scores(p, gs)[1] for p, gs in pairs]
    assert sum(0 < x < 1 for x in f1) >= 300 and sum(x == 1 for x in f1) >= 200  # partial (431), full (380)
    assert sum(any(ord(c) > 127 for c in p) for p, _ in pairs) >= 500  # unicode predictions (1902)


def test_f1_and_em_equal_the_v11_reimplementation(pairs):
    mismatches = []
    for pred, golds in pairs:
        got = squad_scores(pred, golds)
        em, f1 = ref_scores(pred, golds)
        if got["exact_match"] != em or got["f1"] != f1:
            mismatches.append((pred, golds, got, (em, f1)))
    assert not mismatches, f"{len(mismatches)} of {len(pairs)} differ, e.g. {mismatches[:3]}"


def test_normalisation_equals_the_reimplementation(pairs):
    texts = [t for p, gs in pairs for t in [p, *gs]]
    assert [normalize_answer(t) for t in texts] == [ref_normalise(t) for t in texts]


@pytest.mark.parametrize("pred, golds, em, f1", [
    ("", [""], 1.0, 0.0),                          # both empty: v1.1 gives F1 0 (v2.0 would give 1)
    ("The!", ["a ..."], 1.0, 0.0),                 # both normalise to empty
    ("", ["Paris"], 0.0, 0.0),
    ("the Eiffel Tower", ["Eiffel tower."], 1.0, 1.0),
    ("tower tower", ["tower"], 0.0, 2 * 0.5 * 1.0 / 1.5),  # repeated tokens count once each
    ("paris in 1889", ["Paris", "1889 paris"], 0.0, 0.8),  # max over gold answers
    ("the—end", ["end"], 0.0, 0.0),                # "—" is no ASCII punctuation: "the" goes, "—end" stays
    ("_the_", ["the"], 1.0, 0.0),                  # "_" is punctuation, dropped first: both sides empty
    ("théâtre", ["theatre"], 0.0, 0.0),            # no accent folding
])
def test_known_answers(pred, golds, em, f1):
    got = squad_scores(pred, golds)
    assert (got["exact_match"], got["f1"]) == (em, pytest.approx(f1, abs=1e-12))
