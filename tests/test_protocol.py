"""The verdict protocol (priorlib.protocol): known answers for each decision branch, fixed seeds.

Tolerances: hand-computed t statistics and intervals agree to 1e-10; everything else is an exact
outcome at a fixed seed.
"""
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import pairwise_distances, silhouette_score

from priorlib.protocol import (MIN_SEEDS, Direction, Outcome, Verdict, better, difference, equivalent,
                               holds_by_construction, movement_bound, movement_testable, separation)
from priorlib.protocol import _resampled_silhouette
from priorlib import protocol as P

M = 0.05  # margin, e.g. nats of validation loss


def _seeds(n=5, centre=2.0, sd=0.005, seed=0):
    return centre + sd * np.random.default_rng(seed).standard_normal(n)


# ----------------------------------------------------------------------------- the Done-when line

def test_equivalent_inputs_agree():
    a, b = _seeds(seed=0), _seeds(seed=1)
    r = equivalent(a, b, M)
    assert r.outcome is Outcome.AGREES
    assert r.p_value < 0.05 and -M < r.ci_low < r.ci_high < M


def test_inputs_a_margin_beyond_the_bound_contradict():
    """Means 2 margins apart (one full margin outside the +-margin band): the difference is shown."""
    a, b = _seeds(seed=0), _seeds(seed=1) + 2 * M
    r = equivalent(a, b, M)
    assert r.outcome is Outcome.CONTRADICTS
    assert r.ci_high < -M
    assert equivalent(b, a, M).outcome is Outcome.CONTRADICTS  # either sign


def test_inputs_exactly_one_margin_apart_sit_on_the_bound():
    """At a difference of exactly one margin the interval straddles the bound: neither is shown."""
    a, b = _seeds(seed=0), _seeds(seed=1) + M
    r = equivalent(a, b, M)
    assert r.outcome is Outcome.INCONCLUSIVE
    assert r.ci_low < -M < r.ci_high
    # a hair past one margin with no spread in the paired differences: contradicts
    a = np.array([2.0, 2.25, 2.5])
    assert equivalent(a, a + 1.25 * M, M, paired=True).outcome is Outcome.CONTRADICTS


def test_noisy_small_samples_are_inconclusive():
    a, b = _seeds(n=3, sd=10 * M, seed=2), _seeds(n=3, sd=10 * M, seed=3)
    r = equivalent(a, b, M)
    assert r.outcome is Outcome.INCONCLUSIVE
    assert r.ci_low < -M and r.ci_high > M  # the interval covers both bounds


# ----------------------------------------------------------------------------- equivalent: values

def test_equivalent_matches_hand_computed_welch_tost():
    a, b = np.array([1.0, 1.1, 0.9, 1.05]), np.array([1.02, 1.08, 0.93])
    r = equivalent(a, b, 0.2)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    est = a.mean() - b.mean()
    assert r.estimate == pytest.approx(est, abs=1e-12)
    assert r.p_lower == pytest.approx(stats.t.sf((est + 0.2) / se, df), abs=1e-10)
    assert r.p_upper == pytest.approx(stats.t.cdf((est - 0.2) / se, df), abs=1e-10)
    q = stats.t.ppf(0.95, df)
    assert (r.ci_low, r.ci_high) == pytest.approx((est - q * se, est + q * se), abs=1e-10)
    assert r.outcome is Outcome.AGREES and (r.n_a, r.n_b, r.margin, r.paired) == (4, 3, 0.2, False)


def test_paired_removes_a_shared_seed_effect():
    """The seed moves both arms alike (same data order): only the paired test sees equivalence."""
    seed_effect = np.array([0.0, 0.3, -0.2, 0.15, -0.1])
    a = 2.0 + seed_effect
    b = a + np.array([0.004, -0.003, 0.002, 0.0, -0.001])
    assert equivalent(a, b, M).outcome is Outcome.INCONCLUSIVE
    r = equivalent(a, b, M, paired=True)
    assert r.outcome is Outcome.AGREES and r.paired
    d = a - b
    assert r.estimate == pytest.approx(d.mean(), abs=1e-12)


def test_fewer_than_three_seeds_is_inconclusive():
    assert MIN_SEEDS == 3
    r = equivalent([2.0, 2.01], [2.0, 2.02, 2.01], M)
    assert r.outcome is Outcome.INCONCLUSIVE and "at least 3" in r.reason
    assert difference([1.0, 1.0], [0.0, 0.1, 0.0]).outcome is Outcome.INCONCLUSIVE


def test_all_zero_metrics_are_uninformative():
    r = equivalent([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 3.0)
    assert r.outcome is Outcome.UNINFORMATIVE
    assert difference([0, 0, 0], [0, 0, 0, 0]).outcome is Outcome.UNINFORMATIVE
    assert equivalent([0, 0], [0, 0], 3.0).outcome is Outcome.UNINFORMATIVE  # however few seeds
    assert equivalent([0, 0, 0], [0, 0, 1.0], 3.0).outcome is not Outcome.UNINFORMATIVE


def test_zero_spread_reads_the_estimate():
    assert equivalent([1.0] * 3, [1.0] * 3, M).outcome is Outcome.AGREES
    assert equivalent([1.0] * 3, [1.0 + 2 * M] * 3, M).outcome is Outcome.CONTRADICTS
    r = difference([2.0] * 3, [1.0] * 3)
    assert r.outcome is Outcome.AGREES and (r.ci_low, r.ci_high) == (1.0, 1.0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same seeds"):
        equivalent([1, 2, 3], [1, 2], M, paired=True)
    with pytest.raises(ValueError, match="non-finite"):
        equivalent([1, 2, float("nan")], [1, 2, 3], M)
    with pytest.raises(ValueError, match="margin"):
        equivalent([1, 2, 3], [1, 2, 3], 0.0)
    with pytest.raises(ValueError, match="expect"):
        difference([1, 2, 3], [1, 2, 3], expect="bigger")


# ----------------------------------------------------------------------------- difference / better

def test_difference_interval_and_branches():
    a, b = _seeds(n=4, centre=30.0, sd=0.5, seed=4), _seeds(n=4, centre=27.0, sd=0.5, seed=5)  # F1 points
    r = difference(a, b)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert (r.estimate, r.ci_low, r.ci_high, r.p_value) == pytest.approx(
        (a.mean() - b.mean(), ci.low, ci.high, res.pvalue), abs=1e-10)
    assert r.expect is Direction.GREATER and r.outcome is Outcome.AGREES
    assert difference(a, b, expect="less").outcome is Outcome.CONTRADICTS
    noisy = _seeds(n=3, centre=30.0, sd=5.0, seed=6)
    assert difference(noisy, b).outcome is Outcome.INCONCLUSIVE


def test_better_for_faster_means_fewer_steps():
    steps_a, steps_b = [120.0, 130.0, 125.0], [200.0, 210.0, 190.0]
    assert better(steps_a, steps_b, higher_is_better=False).outcome is Outcome.AGREES
    assert better(steps_a, steps_b).outcome is Outcome.CONTRADICTS
    assert better(steps_a, steps_b, higher_is_better=False, paired=True).paired


# ----------------------------------------------------------------------------- separation

def _clouds(shift, n_x=60, n_y=50, d=16, seed=0):
    g = np.random.default_rng(seed)
    return g.standard_normal((n_x, d)), g.standard_normal((n_y, d)) + shift


def test_resampled_silhouette_is_sklearns_at_unit_weights_and_ignores_repeats():
    x, y = _clouds(0.5)
    dist = pairwise_distances(np.vstack([x, y]))
    labels = np.r_[np.zeros(len(x), int), np.ones(len(y), int)]
    rows = np.arange(len(dist))
    want = silhouette_score(dist, labels, metric="precomputed")
    assert _resampled_silhouette(dist, labels, rows) == pytest.approx(want, abs=1e-12)
    # every point twice: a point's own copy is not its neighbour, so nothing changes
    assert _resampled_silhouette(dist, labels, np.r_[rows, rows]) == pytest.approx(want, abs=1e-12)


def test_separated_clouds_agree():
    x, y = _clouds(1.0)
    s = separation(x, y, seed=0, n_boot=300, n_null=100)
    assert s.outcome is Outcome.AGREES and s.separated
    assert s.ci_low > s.null_upper and s.ci_low <= s.estimate <= s.ci_high
    assert (s.n_x, s.n_y, s.measure) == (60, 50, "silhouette")


def test_one_distribution_is_not_separated():
    x, y = _clouds(0.0)
    s = separation(x, y, seed=0, n_boot=300, n_null=100)
    assert not s.separated and s.outcome is Outcome.INCONCLUSIVE
    assert abs(s.null_median) < 0.01  # a random split of one domain sits near 0


def test_less_separated_than_a_random_split_contradicts():
    """y is a wide shell around a tight x: each y point is nearer x than the other y points."""
    g = np.random.default_rng(1)
    x = 0.05 * g.standard_normal((10, 16))
    y = 3.0 * g.standard_normal((60, 16))
    s = separation(x, y, seed=0, n_boot=300, n_null=100)
    assert s.outcome is Outcome.CONTRADICTS and s.ci_high <= s.null_upper
    assert s.estimate < 0


def test_separation_is_seeded_and_checks_shapes():
    x, y = _clouds(0.3)
    one, two = separation(x, y, seed=3, n_boot=200, n_null=50), separation(x, y, seed=3, n_boot=200, n_null=50)
    assert one == two
    with pytest.raises(ValueError, match="same d"):
        separation(x, y[:, :4], seed=0)
    with pytest.raises(ValueError, match=">= 4 rows"):
        separation(x[:3], y, seed=0)


# ----------------------------------------------------------------------------- movement, construction

def test_movement_bound_is_summed_steps_times_root_d():
    assert movement_bound([1e-3] * 100, 576) == pytest.approx(0.1 * 24, abs=1e-12)
    warm = np.r_[np.linspace(0, 1e-3, 10), np.full(90, 1e-3)]
    assert movement_bound(warm, 4) == pytest.approx(warm.sum() * 2, abs=1e-12)
    with pytest.raises(ValueError):
        movement_bound([-1e-3], 4)


def test_movement_below_the_yardstick_is_not_testable():
    m = movement_testable(2.4, 3.0)
    assert not m.testable and m.outcome is Outcome.NOT_TESTABLE
    assert m.outcome.value == "not testable at this learning rate" and "2.4" in m.reason
    ok = movement_testable(3.0, 3.0)  # reaching the yardstick is enough
    assert ok.testable and ok.outcome is None


def test_holds_by_construction_is_reported_not_counted():
    v = holds_by_construction("the acceptance rate is 1 in 576 dims", "1 - c^(-d/2) rounds to 1")
    assert v.outcome is Outcome.HOLDS_BY_CONSTRUCTION and v.outcome.value == "holds by construction"
    assert not v.outcome.is_evidence
    assert [o for o in Outcome if o.is_evidence] == [Outcome.AGREES, Outcome.CONTRADICTS]
    assert Verdict("c", "uninformative", "r").outcome is Outcome.UNINFORMATIVE
    with pytest.raises(ValueError, match="outcome must be one of"):
        Verdict("c", "proven", "r")


# ------------------------------------------------------------------------------ stratified rank correlation
def test_stratified_rank_correlation_is_not_fooled_by_a_shared_factor():
    """Simpson's case: within each rate the order reverses, over all rows it looks positive."""
    x = [1, 2, 3, 4, 5, 10, 20, 30, 40, 50]
    y = [5, 4, 3, 2, 1, 10, 9, 8, 7, 6]
    assert stats.spearmanr(x, y).statistic > 0.5
    c = P.stratified_rank_correlation(x, y, [0] * 5 + [1] * 5)
    assert c.estimate == pytest.approx(-0.999) and c.ci_high < 0 and c.used == [0, 1]
    assert {k: (n, round(r, 12)) for k, (n, r) in c.per_stratum.items()} == {0: (5, -1.0), 1: (5, -1.0)}
    few = P.stratified_rank_correlation(x[:4] + x[5:9], y[:4] + y[5:9], [0] * 4 + [1] * 4)  # 4 rows: not pooled
    assert few.used == [] and np.isnan(few.estimate) and few.per_stratum[0][0] == 4 and few.per_stratum[0][1] == pytest.approx(-1.0)


def test_stratified_rank_correlation_known_interval_and_unusable_strata():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    c = P.stratified_rank_correlation(x, y, ["a"] * 40)
    from scipy.stats import spearmanr
    rho = spearmanr(x, y).statistic
    se = np.sqrt((1 + rho ** 2 / 2) / 37)  # Bonett-Wright, one stratum: the plain Fisher interval
    assert c.estimate == pytest.approx(rho)
    assert c.ci_low == pytest.approx(np.tanh(np.arctanh(rho) - 1.959964 * se), abs=1e-6)
    assert c.ci_high == pytest.approx(np.tanh(np.arctanh(rho) + 1.959964 * se), abs=1e-6)
    # three rows, or no spread: reported, not pooled; nothing usable -> nan
    d = P.stratified_rank_correlation([1, 2, 3, 5, 5, 5, 5, 5], [3, 2, 1, 1, 2, 3, 4, 5], ["s"] * 3 + ["t"] * 5)
    assert d.used == [] and np.isnan(d.estimate) and d.per_stratum["s"] == (3, -1.0) and np.isnan(d.per_stratum["t"][1])
    with pytest.raises(ValueError, match="one entry per row"):
        P.stratified_rank_correlation([1, 2, 3], [1, 2, 3], [0, 0])
