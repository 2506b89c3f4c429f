"""priorlib.metrics.shape.concentration: the spread of trained prompt vectors over that of the reference
activations (paper §4.6, "activations of SQuAD-trained prompts are tightly concentrated"); known answers."""
import numpy as np
import pytest

from priorlib.metrics.shape import TIGHT_RATIO, WIDE_RATIO, concentration, spread
from priorlib.protocol import Outcome

D = 16


def _runs(scale, n_runs=3, seed=1, centre=None):
    rng = np.random.default_rng(seed)
    return [(0 if centre is None else centre) + scale * rng.normal(size=(20, D)) for _ in range(n_runs)]


@pytest.fixture
def ref():
    return np.random.default_rng(0).normal(size=(500, D))


def test_spread_is_rms_distance_to_centroid():
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) + 5.0
    assert spread(x) == pytest.approx(1.0)
    assert spread(3 * x) == pytest.approx(3.0)


def test_concentration_known_answers(ref):
    wide_prior = _runs(1.0, seed=2)
    tight = concentration(_runs(0.1), ref, prior=wide_prior, bound=10.0)
    assert tight["outcome"] is Outcome.AGREES and tight["ratio"] == pytest.approx(0.1, rel=0.3)
    assert tight["ci"][1] < TIGHT_RATIO
    wide = concentration(_runs(2.0), ref, prior=wide_prior, bound=10.0)
    assert wide["outcome"] is Outcome.CONTRADICTS and wide["ci"][0] > WIDE_RATIO
    middle = concentration(_runs(0.7), ref, prior=wide_prior, bound=10.0)
    assert middle["outcome"] is Outcome.INCONCLUSIVE          # concentrated, not tightly
    few = concentration(_runs(0.1, n_runs=2), ref, prior=wide_prior[:2], bound=10.0)
    assert few["outcome"] is Outcome.INCONCLUSIVE and ">= 3 runs" in few["reason"]


def test_concentration_by_construction(ref):
    # the prior already put them at ratio 0.1 and they could move at most 0.5: at most (0.4 + 0.5) / 4 ~ 0.23
    prior = _runs(0.1, seed=3)
    out = concentration(_runs(0.1), ref, prior=prior, bound=0.5)
    assert out["outcome"] is Outcome.HOLDS_BY_CONSTRUCTION and not out["outcome"].is_evidence
    assert out["widest_reachable"] < TIGHT_RATIO
    # the same prior, but the prompts could have spread out: a real test, and it agrees
    assert concentration(_runs(0.1), ref, prior=prior, bound=10.0)["outcome"] is Outcome.AGREES


def test_concentration_drops_massive_reference_rows(ref):
    spiked = ref.copy()
    spiked[:5] *= 100.0                                      # attention-sink rows would inflate the spread
    out = concentration(_runs(0.7), spiked, prior=_runs(1.0, seed=2), bound=10.0)
    assert out["dropped"] == 5 and out["outcome"] is Outcome.INCONCLUSIVE
    with pytest.raises(ValueError):
        concentration([np.zeros((4, D + 1))], ref, prior=[], bound=1.0)
