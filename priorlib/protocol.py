"""The verdict protocol: every claim is decided by one of these functions, on per-seed values.

    eq = equivalent(loss_a, loss_b, margin=0.05, paired=True)     # TOST within +-0.05
    eq.outcome                                                     # Outcome.AGREES / CONTRADICTS / ...
    d = difference(f1_a, f1_b, expect="greater")                   # estimate, 95% CI, verdict on "a > b"
    s = separation(acts_web, acts_squad, seed=0)                   # silhouette vs a random-split null
    movement_testable(movement_bound(lrs, dim=576), yardstick=2.0) # can the optimiser move that far?

Outcomes (``Outcome``): ``agrees``, ``contradicts``, ``inconclusive``, ``holds by construction``,
``not testable at this learning rate`` and ``uninformative``. Only ``agrees`` and ``contradicts``
count as evidence (``Outcome.is_evidence``); the others are reported beside them.

Shared rules, applied in this order:

- values must be 1-D and finite; paired arms must have the same length (same seeds, same data order);
- every value 0 in both arms -> ``uninformative`` (the metric cannot tell the arms apart);
- fewer than ``MIN_SEEDS`` (3) values in an arm -> ``inconclusive``.

Tests are Welch t-tests (unpaired) or paired t-tests; TOST comes from ``statsmodels``, intervals and
bootstraps from ``scipy.stats``. When both arms have zero spread the interval collapses to the
estimate and the decision is read off the estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import pairwise_distances, silhouette_samples
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

__all__ = ["Outcome", "Direction", "MIN_SEEDS", "Verdict", "Equivalence", "Difference", "Separation",
           "Movement", "equivalent", "difference", "better", "separation", "groups_separation", "movement_bound",
           "movement_testable", "holds_by_construction", "Correlation", "stratified_rank_correlation"]

MIN_SEEDS = 3  # per compared arm
MIN_CORRELATION_ROWS = 5  # per stratum of a rank correlation


class Outcome(str, Enum):
    """``equivalent(a, b, 0.05).outcome is Outcome.AGREES``; ``Outcome("holds by construction").is_evidence`` is False."""

    AGREES = "agrees"
    CONTRADICTS = "contradicts"
    INCONCLUSIVE = "inconclusive"
    HOLDS_BY_CONSTRUCTION = "holds by construction"
    NOT_TESTABLE = "not testable at this learning rate"
    UNINFORMATIVE = "uninformative"

    @property
    def is_evidence(self) -> bool:
        """Only a test that could have gone either way counts: ``agrees`` or ``contradicts``."""
        return self in (Outcome.AGREES, Outcome.CONTRADICTS)


class Direction(str, Enum):
    """The claim ``difference`` decides: ``difference(f1_a, f1_b, expect=Direction.GREATER)`` is "a > b"."""

    GREATER = "greater"  # the claim is mean(a) > mean(b)
    LESS = "less"        # the claim is mean(a) < mean(b)


def _enum(cls, value, what: str):
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"{what} must be one of {[m.value for m in cls]}, got {value!r}") from None


@dataclass
class Verdict:
    """A claim with an outcome that needs no test, e.g. ``holds_by_construction("m >= 0", "a norm")``."""

    claim: str
    outcome: Outcome
    reason: str

    def __post_init__(self):
        self.outcome = _enum(Outcome, self.outcome, "outcome")


@dataclass
class Equivalence:
    """``equivalent(a, b, margin=0.05)``: TOST of ``|mean(a) - mean(b)| < margin``.

    ``ci_low, ci_high`` is the ``1 - 2 alpha`` interval of the difference (the one TOST inverts);
    ``p_value`` is the larger of the two one-sided p-values ``p_lower`` (H0: diff <= -margin) and
    ``p_upper`` (H0: diff >= margin).
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    p_lower: float
    p_upper: float
    n_a: int
    n_b: int
    margin: float
    alpha: float
    paired: bool
    outcome: Outcome
    reason: str

    def __post_init__(self):
        self.outcome = _enum(Outcome, self.outcome, "outcome")
        if not self.margin > 0:
            raise ValueError(f"margin must be > 0, got {self.margin}")


@dataclass
class Difference:
    """``difference(a, b)``: ``mean(a) - mean(b)`` with its interval and a verdict on ``expect``.

    ``outcome``: ``agrees`` when the interval lies wholly on the ``expect`` side of 0, ``contradicts``
    when it lies wholly on the other side, otherwise ``inconclusive``.
    """

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float  # two-sided, H0: no difference
    n_a: int
    n_b: int
    paired: bool
    expect: Direction
    outcome: Outcome
    reason: str

    def __post_init__(self):
        self.outcome = _enum(Outcome, self.outcome, "outcome")
        self.expect = _enum(Direction, self.expect, "expect")


@dataclass
class Separation:
    """``separation(x, y, seed=0)``: mean silhouette of the two groups against a random-split null.

    ``null_upper`` is the ``confidence`` quantile of the silhouette of random halvings of ``x``;
    ``separated`` is ``ci_low > null_upper``.
    """

    measure: str
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    null_median: float
    null_upper: float
    n_x: int
    n_y: int
    separated: bool
    outcome: Outcome
    reason: str

    def __post_init__(self):
        self.outcome = _enum(Outcome, self.outcome, "outcome")


@dataclass
class Movement:
    """``movement_testable(bound, yardstick)``: the most the optimiser could move, beside the yardstick.

    ``outcome`` is ``not testable at this learning rate`` when ``bound < yardstick``, else ``None``
    (the movement claim goes on to its own test).
    """

    bound: float
    yardstick: float
    testable: bool
    outcome: Outcome | None
    reason: str

    def __post_init__(self):
        if self.outcome is not None:
            self.outcome = _enum(Outcome, self.outcome, "outcome")


@dataclass
class Correlation:
    """``stratified_rank_correlation(x, y, strata)``: Spearman's ρ within each stratum, pooled.

    ``per_stratum`` maps each stratum to ``(n, ρ)``; ``used`` are the strata that entered the pooled
    estimate (at least ``MIN_CORRELATION_ROWS`` rows and ρ defined). ``ci_low``/``ci_high`` are the ``confidence`` interval
    of the pooled ρ (nan without a usable stratum).
    """

    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    per_stratum: dict
    used: list


# ------------------------------------------------------------------------------------------ helpers

def _values(x: Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per seed), got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} has non-finite values: {v.tolist()}")
    return v


def _arms(a, b, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = _values(a, "a"), _values(b, "b")
    if paired and len(a) != len(b):
        raise ValueError(f"paired arms need the same seeds: {len(a)} values against {len(b)}")
    return a, b


def _guard(a: np.ndarray, b: np.ndarray) -> tuple[Outcome, str] | None:
    """The shared early outcomes (module doc), or ``None`` when the test can run."""
    if len(a) and len(b) and not a.any() and not b.any():
        return Outcome.UNINFORMATIVE, "the metric is 0 in every run of both arms"
    if min(len(a), len(b)) < MIN_SEEDS:
        return Outcome.INCONCLUSIVE, f"{len(a)} and {len(b)} seeds; at least {MIN_SEEDS} per arm are needed"
    return None


def _spread_is_zero(a: np.ndarray, b: np.ndarray, paired: bool) -> bool:
    if paired:
        return bool(np.ptp(a - b) == 0)
    return bool(np.ptp(a) == 0 and np.ptp(b) == 0)


def _interval(a: np.ndarray, b: np.ndarray, paired: bool, level: float) -> tuple[float, float, float, float]:
    """``(estimate, low, high, two-sided p)`` of ``mean(a) - mean(b)`` (paired: the mean of ``a - b``,
    the same number); Welch or paired t."""
    est = float(np.mean(a) - np.mean(b)) if min(len(a), len(b)) else math.nan
    if min(len(a), len(b)) < MIN_SEEDS:
        return est, math.nan, math.nan, math.nan  # no interval below the seed minimum
    if _spread_is_zero(a, b, paired):
        return est, est, est, (1.0 if est == 0 else 0.0)
    res = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(confidence_level=level)
    return est, float(ci.low), float(ci.high), float(res.pvalue)


def _resampled_silhouette(dist: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float:
    """Mean silhouette of the resample ``rows`` (indices, with repeats), a point's own copies left out.

    With ``w_j`` copies of point ``j``: ``a_i`` is the ``w``-weighted mean distance to the other points
    of ``i``'s group (its own copies excluded, so repeats do not pull ``a_i`` to 0), ``b_i`` the
    weighted mean distance to the other group, ``s_i = (b_i - a_i) / max(a_i, b_i)`` (0 when ``i`` is
    alone in its group, as in ``sklearn``), averaged with weights ``w_i``. Unit weights give
    ``sklearn.metrics.silhouette_score``.
    """
    w = np.bincount(rows, minlength=len(dist)).astype(np.float64)  # [n]
    own = labels[:, None] == labels[None, :]  # [n, n]
    wd = dist * w[None, :]
    n_own = own.astype(np.float64) @ w - w  # other points in i's group
    a = np.where(own, wd, 0.0).sum(1) / np.maximum(n_own, 1)
    b = np.where(own, 0.0, wd).sum(1) / ((~own).astype(np.float64) @ w)
    s = np.where(n_own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float((w * s).sum() / w.sum())


def _nearest_other_group(dist: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``[n]``: for each point, the other group (code) with the smallest mean distance to it (the
    silhouette's neighbouring cluster, on all rows)."""
    onehot = np.eye(int(codes.max()) + 1)[codes]  # [n, k]
    mean = (dist @ onehot) / onehot.sum(0)[None, :]
    return np.where(onehot > 0, np.inf, mean).argmin(1)


def _resampled_group_silhouette(dist: np.ndarray, codes: np.ndarray, nearest: np.ndarray, rows: np.ndarray) -> float:
    """:func:`_resampled_silhouette` for any number of groups (``codes`` 0..k-1): ``b_i`` is the
    ``w``-weighted mean distance from ``i`` to its neighbouring group ``nearest[i]``
    (:func:`_nearest_other_group`, fixed on all rows: taking the minimum anew in each resample would bias
    the bootstrap low). Unit weights give ``sklearn.metrics.silhouette_score``; with two groups it is
    :func:`_resampled_silhouette`."""
    w = np.bincount(rows, minlength=len(dist)).astype(np.float64)  # [n]
    onehot = np.eye(int(codes.max()) + 1)[codes]  # [n, k]
    wsum = dist @ (onehot * w[:, None])  # [n, k]: weighted distance sums to each group
    count = w @ onehot  # [k]
    n_own = count[codes] - w  # other points in i's group
    idx = np.arange(len(codes))
    a = wsum[idx, codes] / np.maximum(n_own, 1)
    b = wsum[idx, nearest] / count[nearest]
    s = np.where(n_own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float((w * s).sum() / w.sum())


# ------------------------------------------------------------------------------------------ verdicts

def equivalent(a: Sequence[float], b: Sequence[float], margin: float, *, paired: bool = False,
               alpha: float = 0.05) -> Equivalence:
    """TOST: are the per-seed values ``a`` and ``b`` equivalent within ``+-margin``?

    ``agrees`` when both one-sided tests reject at ``alpha`` (the ``1 - 2 alpha`` interval lies inside
    ``(-margin, margin)``); ``contradicts`` when that interval lies wholly outside ``[-margin, margin]``
    (the difference is shown to exceed the margin); otherwise ``inconclusive``. Guards: module doc.
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    a, b = _arms(a, b, paired)
    est, lo, hi, _ = _interval(a, b, paired, 1 - 2 * alpha)
    p_lo = p_hi = math.nan
    early = _guard(a, b)
    if early is None:
        if _spread_is_zero(a, b, paired):
            p_lo, p_hi = float(not est > -margin), float(not est < margin)
        else:
            tost = ttost_paired(a, b, -margin, margin) if paired else ttost_ind(a, b, -margin, margin,
                                                                                usevar="unequal")
            p_lo, p_hi = float(tost[1][1]), float(tost[2][1])
    common = dict(estimate=est, ci_low=lo, ci_high=hi, p_value=max(p_lo, p_hi), p_lower=p_lo, p_upper=p_hi,
                  n_a=len(a), n_b=len(b), margin=float(margin), alpha=alpha, paired=paired)
    if early is not None:
        return Equivalence(**common, outcome=early[0], reason=early[1])
    span = f"difference {est:+.4g}, {1 - 2 * alpha:.0%} CI [{lo:+.4g}, {hi:+.4g}], margin ±{margin:g}"
    if max(p_lo, p_hi) < alpha:
        return Equivalence(**common, outcome=Outcome.AGREES, reason=f"equivalent: {span}")
    if lo > margin or hi < -margin:
        return Equivalence(**common, outcome=Outcome.CONTRADICTS, reason=f"differs by more than the margin: {span}")
    return Equivalence(**common, outcome=Outcome.INCONCLUSIVE, reason=f"neither shown: {span}")


def difference(a: Sequence[float], b: Sequence[float], *, expect: Direction | str = Direction.GREATER,
               paired: bool = False, confidence: float = 0.95) -> Difference:
    """``mean(a) - mean(b)`` with its ``confidence`` interval, and a verdict on the claim ``expect``.

    ``expect="greater"`` is the claim ``a > b``; ``"less"`` is ``a < b``. Decision rule: ``Difference``.
    """
    expect = _enum(Direction, expect, "expect")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a, b = _arms(a, b, paired)
    est, lo, hi, p = _interval(a, b, paired, confidence)
    common = dict(estimate=est, ci_low=lo, ci_high=hi, confidence=confidence, p_value=p, n_a=len(a),
                  n_b=len(b), paired=paired, expect=expect)
    early = _guard(a, b)
    if early is not None:
        return Difference(**common, outcome=early[0], reason=early[1])
    sign = 1.0 if expect is Direction.GREATER else -1.0
    span = f"difference {est:+.4g}, {confidence:.0%} CI [{lo:+.4g}, {hi:+.4g}]"
    if min(sign * lo, sign * hi) > 0:
        return Difference(**common, outcome=Outcome.AGREES, reason=f"a {expect.value} than b: {span}")
    if max(sign * lo, sign * hi) < 0:
        return Difference(**common, outcome=Outcome.CONTRADICTS, reason=f"the opposite of a {expect.value} than b: {span}")
    return Difference(**common, outcome=Outcome.INCONCLUSIVE, reason=f"the interval holds 0: {span}")


def better(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool = True, paired: bool = False,
           confidence: float = 0.95) -> Difference:
    """Is arm ``a`` better than ``b``? ``better(steps_a, steps_b, higher_is_better=False)`` for "faster"."""
    return difference(a, b, expect=Direction.GREATER if higher_is_better else Direction.LESS,
                      paired=paired, confidence=confidence)


def separation(x, y, *, seed: int, n_boot: int = 1000, n_null: int = 200,
               confidence: float = 0.95) -> Separation:
    """Do the vectors ``x: [n_x, d]`` and ``y: [n_y, d]`` form two clusters?

    Measure: the mean silhouette (Euclidean) of the labels x / y, on features standardised over both
    groups together. Null: the same measure for ``n_null`` random halvings of ``x`` alone (the
    distances are the same ones). Interval: percentile bootstrap (``scipy.stats.bootstrap``, rows
    resampled within each group, a point's repeats not counted as its neighbours). ``agrees`` ("separated") when
    the interval's low end is above the null's ``confidence`` quantile, ``contradicts`` when its high
    end is at or below it, else ``inconclusive``.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be [n, d] with the same d, got {x.shape} and {y.shape}")
    if len(x) < 4 or len(y) < 2:
        raise ValueError(f"separation needs >= 4 rows in x (for the split null) and >= 2 in y, "
                         f"got {len(x)} and {len(y)}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    nx, ny = len(x), len(y)
    dist = _standardised_distances(np.vstack([x, y]))  # [nx + ny, nx + ny]
    labels = np.r_[np.zeros(nx, int), np.ones(ny, int)]
    s = silhouette_samples(dist, labels, metric="precomputed")  # [nx + ny]
    estimate = float(s.mean())

    rng = np.random.default_rng(seed)
    boot = stats.bootstrap((np.arange(nx), np.arange(nx, nx + ny)),
                           lambda ix, iy: _resampled_silhouette(dist, labels, np.r_[ix, iy]),
                           n_resamples=n_boot, confidence_level=confidence, method="percentile",
                           vectorized=False, rng=rng)
    lo, hi = float(boot.confidence_interval.low), float(boot.confidence_interval.high)

    dx, null = dist[:nx, :nx], np.empty(n_null)
    for i in range(n_null):
        split = np.zeros(nx, int)
        split[rng.permutation(nx)[: nx // 2]] = 1
        null[i] = silhouette_samples(dx, split, metric="precomputed").mean()
    return _against_null(estimate, lo, hi, null, confidence, nx, ny, "silhouette", "random split")


def _standardised_distances(z: np.ndarray) -> np.ndarray:
    """Euclidean distances ``[n, n]`` between the rows of ``z`` on features standardised over all rows."""
    sd = z.std(0)
    return pairwise_distances((z - z.mean(0)) / np.where(sd > 0, sd, 1.0))


def _against_null(estimate: float, lo: float, hi: float, null: np.ndarray, confidence: float, n_x: int, n_y: int,
                  what: str, null_name: str) -> Separation:
    """The cluster rule of :func:`separation` and :func:`groups_separation`: separated when the interval
    ``[lo, hi]`` lies above the null's ``confidence`` quantile, not when it ends at or below it, else
    inconclusive."""
    null_upper = float(np.quantile(null, confidence))
    common = dict(measure="silhouette", estimate=estimate, ci_low=lo, ci_high=hi, confidence=confidence,
                  null_median=float(np.median(null)), null_upper=null_upper, n_x=n_x, n_y=n_y)
    span = (f"{what} {estimate:.3f}, {confidence:.0%} CI [{lo:.3f}, {hi:.3f}], "
            f"{null_name.replace(' ', '-')} null {confidence:.0%} quantile {null_upper:.3f}")
    if lo > null_upper:
        return Separation(**common, separated=True, outcome=Outcome.AGREES, reason=f"separated: {span}")
    if hi <= null_upper:
        return Separation(**common, separated=False, outcome=Outcome.CONTRADICTS,
                          reason=f"no more separated than a {null_name}: {span}")
    return Separation(**common, separated=False, outcome=Outcome.INCONCLUSIVE,
                      reason=f"the interval reaches the null: {span}")


def groups_separation(x, labels, *, seed: int, n_boot: int = 1000, n_null: int = 200,
                      confidence: float = 0.95) -> Separation:
    """Do the rows of ``x: [n, d]`` form one cluster per label (two or more groups)?

    :func:`separation` for any number of groups: the mean silhouette (Euclidean) of ``labels`` on
    features standardised over all rows; the null is the same measure for ``n_null`` random relabellings
    of the rows (the same group sizes, the same distances); the interval is a percentile bootstrap
    (rows resampled within each group, a point's repeats not counted as its neighbours, each point's
    neighbouring group fixed on all rows: :func:`_resampled_group_silhouette`). ``agrees``
    ("separated") when the interval's low end is above the null's ``confidence`` quantile,
    ``contradicts`` when its high end is at or below it, else ``inconclusive``. In the result ``n_x`` is
    the number of rows and ``n_y`` the number of groups.

        s = groups_separation(module_means, module_names, seed=0)   # s.outcome, s.reason
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(labels)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"x must be [n, d] and labels [n], got {x.shape} and {y.shape}")
    groups, codes, sizes = np.unique(y, return_inverse=True, return_counts=True)
    if len(groups) < 2 or sizes.min() < 2:
        raise ValueError(f"groups_separation needs two or more groups of at least 2 rows each, "
                         f"got {dict(zip(groups.tolist(), sizes.tolist()))}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    dist = _standardised_distances(x)  # [n, n]
    estimate = float(silhouette_samples(dist, codes, metric="precomputed").mean())

    rng = np.random.default_rng(seed)
    members = tuple(np.flatnonzero(codes == g) for g in range(len(groups)))
    nearest = _nearest_other_group(dist, codes)
    boot = stats.bootstrap(members, lambda *ix: _resampled_group_silhouette(dist, codes, nearest, np.concatenate(ix)),
                           n_resamples=n_boot, confidence_level=confidence, method="percentile",
                           vectorized=False, rng=rng)
    lo, hi = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    null = np.array([silhouette_samples(dist, rng.permutation(codes), metric="precomputed").mean()
                     for _ in range(n_null)])
    return _against_null(estimate, lo, hi, null, confidence, int(len(x)), int(len(groups)),
                         f"silhouette of {len(groups)} groups ({len(x)} rows)", "random relabelling")


def stratified_rank_correlation(x, y, strata, *, confidence: float = 0.95) -> Correlation:
    """Spearman's ρ of ``x`` and ``y`` within each stratum (e.g. each learning rate), pooled on Fisher's z
    scale with weights ``n - 3`` and the Bonett-Wright (2000) standard error ``sqrt((1 + ρ²/2) / (n - 3))``
    per stratum, so that a factor shared by a stratum (one rate moving every prompt further) cannot make
    or break the association the way a ρ over all rows pooled does. A stratum enters with at least
    :data:`MIN_CORRELATION_ROWS` rows and some spread in both ``x`` and ``y`` (at 4 rows even a perfect order has
    an exact two-sided p of 1/12); ρ = ±1 is held at ±0.999 on the z scale (its interval stays finite).

        c = stratified_rank_correlation([1, 2, 3, 4, 10, 20, 30, 40], [4, 3, 2, 1, 9, 8, 7, 6], [0] * 4 + [1] * 4)
        c.estimate     # nan: 4 rows per rate are too few to pool (each stratum's ρ = -1 is in c.per_stratum)
    """
    x, y = _values(x, "x"), _values(y, "y")
    strata = list(strata)
    if not (len(x) == len(y) == len(strata)):
        raise ValueError(f"x, y and strata must have one entry per row, got {len(x)}, {len(y)} and {len(strata)}")
    per, zs, ws, vs, used = {}, [], [], [], []
    for key in dict.fromkeys(strata):
        rows = np.array([k == key for k in strata])
        a, b, n = x[rows], y[rows], int(rows.sum())
        if n < 3 or np.all(a == a[0]) or np.all(b == b[0]):
            per[key] = (n, float("nan"))
            continue
        rho = float(stats.spearmanr(a, b).statistic)
        per[key] = (n, rho)
        if n >= MIN_CORRELATION_ROWS:
            r = float(np.clip(rho, -0.999, 0.999))
            zs.append(math.atanh(r))
            ws.append(n - 3)
            vs.append((1 + r * r / 2) / (n - 3))
            used.append(key)
    if not used:
        return Correlation(float("nan"), float("nan"), float("nan"), confidence, per, used)
    w = np.asarray(ws, float)
    z = float(np.dot(w, zs) / w.sum())
    se = float(math.sqrt(np.dot(w * w, vs)) / w.sum())
    q = float(stats.norm.ppf(0.5 + confidence / 2))
    return Correlation(math.tanh(z), math.tanh(z - q * se), math.tanh(z + q * se), confidence, per, used)


def movement_bound(lrs_per_step: Sequence[float], dim: int) -> float:
    """The most a sign-like optimiser (Adam) can move a ``dim``-vector: ``sum(lr_t) * sqrt(dim)``.

    Each step moves each coordinate by at most about ``lr_t``, so a step's L2 length is at most
    ``lr_t sqrt(dim)``, and the path's at most the sum of those.
    """
    lrs = _values(lrs_per_step, "lrs_per_step")
    if np.any(lrs < 0):
        raise ValueError("step sizes must be >= 0")
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return float(lrs.sum() * math.sqrt(int(dim)))


def movement_testable(bound: float, yardstick: float) -> Movement:
    """``not testable at this learning rate`` when the optimiser could not have reached ``yardstick``."""
    if not (bound >= 0 and yardstick > 0):
        raise ValueError(f"bound must be >= 0 and yardstick > 0, got {bound} and {yardstick}")
    side = (f"the optimiser could move a vector at most {bound:.4g}, "
            f"{'less' if bound < yardstick else 'more'} than the yardstick {yardstick:.4g}")
    if bound < yardstick:
        return Movement(bound, yardstick, False, Outcome.NOT_TESTABLE, f"not testable: {side}")
    return Movement(bound, yardstick, True, None, f"testable: {side}")


def holds_by_construction(claim: str, reason: str) -> Verdict:
    """A check that cannot fail (e.g. a rate that is 1 by definition): reported, never evidence."""
    return Verdict(claim, Outcome.HOLDS_BY_CONSTRUCTION, reason)
