"""Chapter 01's answer-span and MATH-module claims: their decision rules on synthetic cases with known
answers (each can agree, contradict, or be inconclusive), and the multi-group cluster rule of the protocol."""
import numpy as np
import pytest
from sklearn.metrics import pairwise_distances, silhouette_score

from priorlib.compendium import chapter
from priorlib.compendium.setup import setup
from priorlib.protocol import (Outcome, _nearest_other_group, _resampled_group_silhouette, _resampled_silhouette,
                               groups_separation)

atlas = chapter("01_proof_of_concept")


# ------------------------------------------------------------------------------------- answers_closer
def test_answers_closer_agrees_below_one_and_contradicts_above():
    rng = np.random.default_rng(0)
    closer = answer = atlas.answers_closer(np.exp(rng.normal(-0.4, 0.2, 40)), seed=0)
    assert answer["outcome"] is Outcome.AGREES and answer["ci_high"] < 1 and answer["share_closer"] > 0.9
    further = atlas.answers_closer(np.exp(rng.normal(0.4, 0.2, 40)), seed=0)
    assert further["outcome"] is Outcome.CONTRADICTS and further["ci_low"] > 1 and further["share_closer"] < 0.1
    assert closer["n_prompts"] == further["n_prompts"] == 40


def test_answers_closer_is_inconclusive_around_one_and_with_few_prompts():
    rng = np.random.default_rng(1)
    mixed = atlas.answers_closer(np.exp(rng.normal(0.0, 0.5, 40)), seed=0)
    assert mixed["outcome"] is Outcome.INCONCLUSIVE and mixed["ci_low"] < 1 < mixed["ci_high"]
    few = atlas.answers_closer([0.2] * 9, seed=0)  # far closer, but only 9 prompts
    assert few["outcome"] is Outcome.INCONCLUSIVE and "only 9 prompts" in few["reason"]
    assert atlas.answers_closer([0.2] * 10)["outcome"] is Outcome.AGREES  # no spread: the interval is the value
    assert atlas.answers_closer([], seed=0)["outcome"] is Outcome.INCONCLUSIVE
    with pytest.raises(ValueError, match="> 0"):
        atlas.answers_closer([0.5, 0.0] * 6)
    ratios = np.exp(rng.normal(0, 1, 30))
    assert atlas.answers_closer(ratios, seed=3) == atlas.answers_closer(ratios, seed=3)


# ------------------------------------------------------------------------------------- answer_span_ratios
def _prompts(make, n=12, length=30, answer=(10, 14), skip_first=1, seed=0):
    """``n`` prompts of ``length`` tokens, answer at positions ``answer``, rows from ``make(rng, role)``
    (rows for the kept positions ``skip_first..length-1``), packed as ``all|p`` / ``all_text`` / ``all_pos``."""
    rng = np.random.default_rng(seed)
    roles, rows, text, pos = [], [], [], []
    for i in range(n):
        role = np.zeros(length, np.int64)
        role[answer[0]:answer[1]] = 1
        role[-6:] = 3  # template
        role[-5:-2] = 2  # question
        roles.append(role)
        rows.append(make(rng, role[skip_first:]))
        text.append(np.full(length - skip_first, i))
        pos.append(np.arange(skip_first, length))
    return np.concatenate(rows), np.concatenate(text), np.concatenate(pos), roles


def test_answer_span_ratios_find_tight_answers_and_spread_answers():
    def tight(rng, role):  # answer rows huddle around one point, the rest are spread
        x = rng.normal(size=(len(role), 8)) * 3
        x[role == 1] = rng.normal(size=8) + 0.1 * rng.normal(size=((role == 1).sum(), 8))
        return x

    def spread(rng, role):  # the answer rows are the spread ones
        x = 0.1 * rng.normal(size=(len(role), 8))
        x[role == 1] = 3 * rng.normal(size=((role == 1).sum(), 8))
        return x

    for make, want in ((tight, Outcome.AGREES), (spread, Outcome.CONTRADICTS)):
        rows, text, pos, roles = _prompts(make)
        r = atlas.answer_span_ratios(rows, text, pos, roles, seed=0)
        assert len(r["ratio"]) == 12 and set(r["n_tokens"]) == {4}
        assert atlas.answers_closer(r["ratio"])["outcome"] is want


def test_a_contiguous_control_removes_the_adjacency_artefact():
    """A smooth walk: every token near its neighbours, the answer nothing special. Scattered random tokens
    would make the answer look close; contiguous spans of the same length do not."""
    def walk(rng, role):
        return np.cumsum(rng.normal(size=(len(role), 8)), 0)

    rows, text, pos, roles = _prompts(walk, n=40)
    r = atlas.answer_span_ratios(rows, text, pos, roles, seed=0)
    assert atlas.answers_closer(r["ratio"])["outcome"] is Outcome.INCONCLUSIVE
    assert 0.7 < np.median(r["ratio"]) < 1.3


def test_answer_span_ratios_skip_short_answers_and_prompts_without_room():
    def noise(rng, role):
        return rng.normal(size=(len(role), 4))

    rows, text, pos, roles = _prompts(noise, n=3, answer=(10, 11))  # one-token answers
    r = atlas.answer_span_ratios(rows, text, pos, roles, seed=0)
    assert len(r["ratio"]) == 0 and r["n_short"] == 3
    rows, text, pos, roles = _prompts(noise, n=2, length=12, answer=(2, 9))  # no 7-token context span left
    r = atlas.answer_span_ratios(rows, text, pos, roles, seed=0)
    assert len(r["ratio"]) == 0 and r["n_no_room"] == 2
    rows, text, pos, roles = _prompts(noise, n=4)
    one, two = (atlas.answer_span_ratios(rows, text, pos, roles, seed=5)["ratio"] for _ in range(2))
    assert np.array_equal(one, two)


def test_answer_spans_and_its_verdict():
    def tight(rng, role):
        x = rng.normal(size=(len(role), 8)) * 3
        x[role == 1] = 0.1 * rng.normal(size=((role == 1).sum(), 8))
        return x

    rows, text, pos, roles = _prompts(tight)
    caps = {"squad": {"all|layers.1.resid_post": rows.astype(np.float16), "all_text": text, "all_pos": pos}}
    qa = atlas.answer_spans(caps, roles, ["embed", "layers.0.resid_post", "layers.1.resid_post"],
                            setup("01_proof_of_concept", "smoke"))
    v = atlas.verdict_answers(qa)
    assert v.claim_id == "answer-tokens-close" and v.outcome is Outcome.AGREES
    assert "contiguous span" in v.measured and "12 of 12" in v.measured


# ------------------------------------------------------------------------------------- groups_separation
def _blobs(shift, k=3, n=30, d=8, seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal((k * n, d)) + shift * np.repeat(np.eye(d)[:k], n, 0), np.repeat(np.arange(k), n)


def test_group_silhouette_is_sklearns_at_unit_weights_and_the_two_group_one():
    x, y = _blobs(0.5)
    dist = pairwise_distances(x)
    rows = np.arange(len(x))
    near = _nearest_other_group(dist, y)
    want = silhouette_score(dist, y, metric="precomputed")
    assert _resampled_group_silhouette(dist, y, near, rows) == pytest.approx(want, abs=1e-12)
    assert _resampled_group_silhouette(dist, y, near, np.r_[rows, rows]) == pytest.approx(want, abs=1e-12)
    two = (rows < 40).astype(int)
    some = np.r_[rows, rows[:50]]
    assert _resampled_group_silhouette(dist, two, _nearest_other_group(dist, two), some) == pytest.approx(
        _resampled_silhouette(dist, two, some), abs=1e-12)


def test_groups_separation_known_answers():
    x, y = _blobs(6.0)
    s = groups_separation(x, y, seed=0, n_boot=300, n_null=100)
    assert s.outcome is Outcome.AGREES and s.ci_low > s.null_upper and s.ci_low <= s.estimate <= s.ci_high
    assert (s.n_x, s.n_y) == (90, 3)
    for seed in range(3):  # one blob, labels at random: not separated
        x, y = _blobs(0.0, seed=seed)
        s = groups_separation(x, y, seed=0, n_boot=300, n_null=100)
        assert s.outcome is Outcome.INCONCLUSIVE and s.ci_low <= s.estimate <= s.ci_high
    g = np.random.default_rng(1)  # a tight group inside two wide ones: less separated than random labels
    x = np.r_[0.05 * g.standard_normal((10, 16)), 3.0 * g.standard_normal((60, 16))]
    s = groups_separation(x, np.r_[["a"] * 10, ["b"] * 30, ["c"] * 30], seed=0, n_boot=300, n_null=100)
    assert s.outcome is Outcome.CONTRADICTS and s.ci_high <= s.null_upper


def test_groups_separation_is_seeded_and_checks_inputs():
    x, y = _blobs(0.3)
    assert groups_separation(x, y, seed=2, n_boot=100, n_null=50) == groups_separation(x, y, seed=2, n_boot=100,
                                                                                       n_null=50)
    with pytest.raises(ValueError, match="two or more groups"):
        groups_separation(x, np.zeros(len(x)), seed=0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        groups_separation(x, np.r_[np.zeros(len(x) - 1), 1], seed=0)
    with pytest.raises(ValueError, match="labels"):
        groups_separation(x, y[:-1], seed=0)


def test_module_clusters_and_its_verdict():
    cfg = setup("01_proof_of_concept", "smoke")
    points = ["embed", "layers.0.resid_post"]
    for shift, want in ((6.0, Outcome.AGREES), (0.0, Outcome.INCONCLUSIVE)):
        x, y = _blobs(shift, k=6, n=8)
        caps = {"math": {"mean|layers.0.resid_post": x.astype(np.float32)}}
        qm = atlas.module_clusters(caps, {"math_module": [f"m{i}" for i in y]}, points, cfg)
        v = atlas.verdict_modules(qm)
        assert (qm["n_modules"], qm["n_texts"]) == (6, 48)
        assert v.claim_id == "math-modules-apart" and v.outcome is want
