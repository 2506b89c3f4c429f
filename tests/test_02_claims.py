"""Chapter 02's no-collapse and no-prior-improves verdicts: known answers that can fail both ways, and the
inconclusive and by-construction guards."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

import pandas as pd
import pytest

from priorlib.compendium import chapter
from priorlib.compendium import decide
from priorlib.compendium import margins as M
from priorlib.compendium import paper as P
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup

C02 = chapter("02_lr_priors")
O = V.Outcome
PRIORS = ("isotropic", "xavier", "fitted-gaussian", "vocab-sample")


def _share(k0, k1, n=60, seeds=3):
    return {"sampled": (k0, n), "trained": (k1, n), "seeds": seeds}


# ------------------------------------------------------------------------------------ collapse: pure rule
def test_collapsed_level_is_the_vocabularys_share_capped_at_095():
    assert C02.collapsed_level(0.62) == 0.62
    assert C02.collapsed_level(0.99) == 0.95 and C02.collapsed_level(None) == 0.95
    assert C02.collapsed_level(float("nan")) == 0.95 and C02.collapsed_level(0.0) == 0.95


def test_inside_class_uses_the_exact_binomial_interval():
    assert C02.inside_class(0, 60, 0.95)[0] == "outside"       # CI [0, 6%] below 95%
    assert C02.inside_class(57, 60, 0.95)[0] == "collapsed"    # 95% inside: as inside as the level
    assert C02.inside_class(55, 60, 0.95)[0] == "undecided"    # 92%, CI reaches 95%
    assert C02.inside_class(1, 3, 0.5)[0] == "undecided"       # too few vectors to call it
    lo, hi = C02.inside_class(0, 60, 0.95)[1]
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 60))


def test_no_collapse_agrees_when_vocab_sample_leaves_the_cloud_even_if_nothing_else_could_move():
    """vocab-sample starts inside (it copies token embeddings) and ends outside: real evidence, whatever the bound."""
    shares = {"isotropic": _share(0, 0), "vocab-sample": _share(60, 0)}
    out, why = C02.no_collapse(shares, 0.95, False)
    assert out is O.AGREES and "vocab-sample not collapsed" in why and "isotropic" not in why.split(";")[0]


def test_no_collapse_agrees_when_a_movable_prior_ends_outside():
    shares = {"isotropic": _share(0, 0), "vocab-sample": _share(60, 60)}
    assert C02.no_collapse(shares, 0.95, True)[0] is O.AGREES


def test_no_collapse_contradicts_when_every_prior_collapses():
    shares = {p: _share(0 if p != "vocab-sample" else 60, 60) for p in PRIORS}
    out, why = C02.no_collapse(shares, 0.95, True)
    assert out is O.CONTRADICTS and "every prior collapsed" in why
    # priors that started outside and moved in: their collapse is evidence even without a bound
    moved_in = {p: _share(0, 58) for p in PRIORS[:3]}
    assert C02.no_collapse(moved_in, 0.95, None)[0] is O.CONTRADICTS
    # the collapsed level is the vocabulary's own share when that is lower: 40/60 inside >= 0.6
    assert C02.no_collapse({p: _share(0, 40) for p in PRIORS}, 0.6, True)[0] is O.CONTRADICTS
    assert C02.no_collapse({p: _share(0, 40) for p in PRIORS}, 0.95, True)[0] is O.AGREES  # 67%: CI below 95%
    assert C02.no_collapse({p: _share(0, 55) for p in PRIORS}, 0.95, True)[0] is O.INCONCLUSIVE  # 92%: undecided


def test_no_collapse_holds_by_construction_when_only_stuck_outside_priors_support_it():
    """Priors that start outside and cannot move a token gap end outside because they started there."""
    shares = {"isotropic": _share(0, 0), "xavier": _share(0, 0), "vocab-sample": _share(60, 60)}
    out, why = C02.no_collapse(shares, 0.95, False)
    assert out is O.HOLDS_BY_CONSTRUCTION and not out.is_evidence and "could not move" in why
    # the bound unknown (no prompt dimension): not shown either way, so not support
    assert C02.no_collapse(shares, 0.95, None)[0] is O.INCONCLUSIVE
    # the same shares with a bound that reaches the gap: the optimiser could have moved them in
    assert C02.no_collapse(shares, 0.95, True)[0] is O.AGREES


def test_no_collapse_stuck_inside_is_not_a_contradiction():
    shares = {"vocab-sample": _share(60, 60), "fitted-gaussian": _share(58, 58)}
    assert C02.no_collapse(shares, 0.95, False)[0] is O.NOT_TESTABLE
    assert C02.no_collapse(shares, 0.95, None)[0] is O.INCONCLUSIVE
    assert C02.no_collapse(shares, 0.95, True)[0] is O.CONTRADICTS


def test_no_collapse_needs_three_seeds_per_prior():
    assert C02.no_collapse({"vocab-sample": _share(40, 0, n=40, seeds=2)}, 0.95, True)[0] is O.INCONCLUSIVE
    assert C02.no_collapse({p: _share(0, 60, seeds=2) for p in PRIORS}, 0.95, True)[0] is O.INCONCLUSIVE
    assert C02.no_collapse({}, 0.95, True)[0] is O.INCONCLUSIVE


def test_prompt_shares_pools_the_vectors_of_every_seed():
    place = pd.DataFrame([dict(prior="xavier", lr=5e-3, seed=s, when=w, share_in_hdr=v)
                          for s in range(3) for w, v in (("sampled", 0.0), ("trained", 0.05 * s))])
    got = C02.prompt_shares(place, 20)
    assert got == {"xavier": {"sampled": (0, 60), "trained": (3, 60), "seeds": 3}}  # 0 + 1 + 2 of 20 each


# ------------------------------------------------------------------------------------ improves: pure rule
def _rows(losses: dict, plateaued=True, lr=5e-3) -> pd.DataFrame:
    return pd.DataFrame([dict(prior=p, lr=lr, seed=s, final_val_loss=v, plateaued=plateaued)
                         for p, vs in losses.items() for s, v in enumerate(vs)])


BASE = [2.00, 2.01, 2.02]


def test_no_prior_improves_agrees_when_every_prior_is_equivalent_or_worse():
    rows = _rows({"vocab-sample": BASE, "isotropic": [v + 0.01 for v in BASE], "xavier": [v + 0.3 for v in BASE]})
    out, tests = C02.no_prior_improves(rows, 5e-3)
    assert out is O.AGREES
    assert dict((p, o) for p, (o, _) in tests) == {"isotropic": O.AGREES, "xavier": O.AGREES}
    assert "equivalent" in tests[0][1][1] and "worse" in tests[1][1][1]


def test_no_prior_improves_contradicts_when_one_prior_is_better():
    rows = _rows({"vocab-sample": BASE, "isotropic": [v + 0.01 for v in BASE], "xavier": [v - 0.3 for v in BASE]})
    out, tests = C02.no_prior_improves(rows, 5e-3)
    assert out is O.CONTRADICTS and dict(tests)["xavier"][0] is O.CONTRADICTS and "improves" in dict(tests)["xavier"][1]


def test_a_gain_inside_the_margin_is_no_improvement():
    """Significantly lower but within ±0.05 nats (TOST): the same quality, so no gain."""
    rows = _rows({"vocab-sample": BASE, "xavier": [v - 0.02 for v in BASE]})
    a, b = (decide.arm(rows, "final_val_loss", p, prior=p) for p in ("xavier", "vocab-sample"))
    assert C02.prior_gain(a, b)[0] is O.AGREES


def test_no_prior_improves_inconclusive_guards():
    worse = {"vocab-sample": BASE, "xavier": [v - 0.3 for v in BASE]}
    assert C02.no_prior_improves(_rows(worse, plateaued=False), 5e-3)[0] is O.INCONCLUSIVE  # plateau rule
    two = {"vocab-sample": BASE[:2], "xavier": [v - 0.3 for v in BASE[:2]]}
    assert C02.no_prior_improves(_rows(two), 5e-3)[0] is O.INCONCLUSIVE  # < 3 seeds
    noisy = {"vocab-sample": [2.0, 2.2, 1.8], "xavier": [2.06, 2.26, 1.86]}  # neither equivalent nor different
    assert C02.no_prior_improves(_rows(noisy), 5e-3)[0] is O.INCONCLUSIVE
    assert C02.no_prior_improves(_rows({"xavier": BASE, "isotropic": BASE}), 5e-3)[0] is O.INCONCLUSIVE  # no ref
    assert C02.no_prior_improves(_rows({"vocab-sample": BASE}), 5e-3)[0] is O.INCONCLUSIVE
    assert C02.no_prior_improves(_rows(worse), 5e-4)[0] is O.INCONCLUSIVE  # nothing at that rate


# ------------------------------------------------------------------------------------ through verdicts()
def _grid(trained_inside: dict, vocab_loss_shift=0.0):
    """One lr (5e-3), 3 seeds, four priors; every prior's loss equal but vocab-sample's shifted."""
    rows, place = [], []
    for p in PRIORS:
        for seed in range(3):
            rows.append(dict(prior=p, lr=5e-3, seed=seed, final_val_loss=2.0 + 0.01 * seed
                             + (vocab_loss_shift if p == "vocab-sample" else 0.0), final_f1=40.0, plateaued=True))
            for when, share in (("sampled", 1.0 if p == "vocab-sample" else 0.0), ("trained", trained_inside[p])):
                place.append(dict(prior=p, lr=5e-3, seed=seed, when=when, median_nn_l2=1.0 + seed + (when == "trained"),
                                  median_nn_cos=0.5, median_mahalanobis=30.0, share_in_hdr=share,
                                  moved_l2=0.0 if when == "sampled" else 0.1))
    return pd.DataFrame(rows), pd.DataFrame(place)


S1 = dict(learning_rates=[5e-3], seeds=[0, 1, 2])


def test_verdicts_include_both_claims_with_their_ids():
    s = setup("02_lr_priors", "cpu", **S1)
    rows, place = _grid({p: 0.0 for p in PRIORS})  # every prior ends outside, vocab-sample from inside
    out, num = C02.verdicts(rows, place, {"median_nn_l2": 0.5, "share_in_hdr": 0.97}, s, dim=576)
    by = {v.claim_id: v for v in out}
    assert [v.claim_id for v in out][3:] == ["no-collapse", "no-prior-improves"]
    assert by["no-collapse"].outcome is O.AGREES and "vocab-sample 100% → 0%" in by["no-collapse"].measured
    assert num["collapsed_level"] == 0.95 and num["share_in_hdr_by_prior"]["vocab-sample"] == {
        "sampled": 1.0, "trained": 0.0, "vectors": 3 * s.n_tokens}
    assert by["no-prior-improves"].outcome is O.AGREES  # equal losses: equivalent to vocab-sample
    assert "margin ±0.05" in by["no-prior-improves"].measured
    # every prior collapsed; vocab-sample 0.3 nats worse than the rest: the others improve on it
    rows, place = _grid({p: 1.0 for p in PRIORS}, vocab_loss_shift=0.3)
    out, _ = C02.verdicts(rows, place, {"median_nn_l2": 0.5, "share_in_hdr": 0.97}, s, dim=576)
    by = {v.claim_id: v for v in out}
    assert by["no-collapse"].outcome is O.CONTRADICTS and by["no-prior-improves"].outcome is O.CONTRADICTS


def test_verdicts_by_construction_when_the_optimiser_cannot_move_a_gap():
    s = setup("02_lr_priors", "cpu", **S1)
    inside = {"isotropic": 0.0, "xavier": 0.0, "fitted-gaussian": 0.0, "vocab-sample": 1.0}
    rows, place = _grid(inside)
    bound = C02.verdicts(rows, place, {"median_nn_l2": 0.5}, s, dim=576)[1]["movement_bound_quality_lr"]
    out, _ = C02.verdicts(rows, place, {"median_nn_l2": 2 * bound, "share_in_hdr": 0.97}, s, dim=576)
    v = {v.claim_id: v for v in out}["no-collapse"]
    assert v.outcome is O.HOLDS_BY_CONSTRUCTION
    out, _ = C02.verdicts(rows, place, {"median_nn_l2": 0.5, "share_in_hdr": 0.97}, s, dim=576)
    assert {v.claim_id: v for v in out}["no-collapse"].outcome is O.AGREES  # the bound reaches the gap
    out, _ = C02.verdicts(rows, place, {"median_nn_l2": 0.5, "share_in_hdr": 0.97}, s)  # no dim: no bound
    assert {v.claim_id: v for v in out}["no-collapse"].outcome is O.INCONCLUSIVE


def test_rules_name_the_registrys_claims():
    ruled = {r.claim_id: r for r in M.RULES if r.chapter == "02"}
    for cid in ("no-collapse", "no-prior-improves"):
        assert (ruled[cid].claim, ruled[cid].measure) == (P.claim(cid).statement, P.claim(cid).measure)


def test_docstring_examples_of_the_rules_run():
    import doctest
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for t in finder.find(C02.no_collapse, "no_collapse", globs={"no_collapse": C02.no_collapse}):
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0 and runner.summarize(verbose=False).attempted == 2


# --------------------------------------------------------------------- the prior decides the posterior
def _ranks(n, sign, shift):
    """``n`` runs at one rate: sampled distances 1..n, trained ones in the same (sign 1) or reverse order."""
    s = np.arange(1.0, n + 1)
    return list(s), list(shift + sign * s)


def test_posterior_follows_prior_within_each_rate_known_answers():
    s1, t1 = _ranks(12, 1, 0.0)
    s2, t2 = _ranks(12, 1, 100.0)  # the second rate moves every prompt far: a pooled ρ would blur nothing here
    out, why, num = C02.posterior_follows_prior(s1 + s2, t1 + t2, [1e-3] * 12 + [5e-2] * 12)
    assert out is O.AGREES and num["rho_by_lr"] == {"0.001": 1.0, "0.05": 1.0} and "pooled within rates" in why
    r1, q1 = _ranks(12, -1, 0.0)
    r2, q2 = _ranks(12, -1, 100.0)
    out, _, num = C02.posterior_follows_prior(r1 + r2, q1 + q2, [1e-3] * 12 + [5e-2] * 12)
    assert out is O.CONTRADICTS and num["rho_within_lr_ci"][1] < 0.7
    # the order kept at each rate, reversed only by the rates: over all runs ρ < 0, within rates it agrees
    s_hi, t_hi = [10.0 + v for v in s1], [v - 50.0 for v in t1]
    out, _, _ = C02.posterior_follows_prior(s1 + s_hi, [v + 50 for v in t1] + t_hi, [1e-3] * 12 + [5e-2] * 12)
    assert out is O.AGREES
    # 4 runs at one rate: ρ = 1 but the interval reaches 0
    assert C02.posterior_follows_prior([1, 2, 3, 4], [1, 2, 3, 4], [1e-3] * 4)[0] is O.INCONCLUSIVE


def test_posterior_follows_prior_at_a_rate_that_cannot_move_a_prompt_is_by_construction():
    s1, t1 = _ranks(12, 1, 0.0)
    out, why, _ = C02.posterior_follows_prior(s1, t1, [1e-4] * 12, movable={1e-4: False})
    assert out is O.HOLDS_BY_CONSTRUCTION and "by construction" in why
    s2, t2 = _ranks(12, -1, 0.0)  # the movable rate decides; the fixed one is left out
    out, _, num = C02.posterior_follows_prior(s1 + s2, t1 + t2, [1e-4] * 12 + [5e-2] * 12,
                                              movable={1e-4: False, 5e-2: True})
    assert out is O.CONTRADICTS and num["rho_by_lr"]["0.0001"] == 1.0


def test_an_undecided_gain_states_the_plateau_guard_once():
    rows = _rows({"vocab-sample": [2.0, 2.2, 1.8], "xavier": [2.06, 2.26, 1.86]}, plateaued=False)
    out, tests = C02.no_prior_improves(rows, 5e-3)
    why = tests[0][1][1]
    assert out is O.INCONCLUSIVE and why.count("not known to have plateaued") == 1
    assert "equivalence: " in why and "gain: " in why


def test_the_quality_verdict_names_the_prior_it_compares_against():
    s = setup("02_lr_priors", "cpu", **S1)
    rows, place = _grid({p: 0.0 for p in PRIORS})
    order = list(dict.fromkeys(rows["prior"]))
    out, _ = C02.verdicts(rows, place, {"median_nn_l2": 0.5, "share_in_hdr": 0.97}, s, dim=576)
    quality = out[2].measured
    assert f"against {order[0]} (TOST" in quality and f"{order[0]}: " not in quality.split("(TOST")[1]


# ------------------------------------------------------------------------------------------- captions
def test_captions_carry_the_numbers_the_figures_answer():
    place = pd.DataFrame([dict(prior=p, lr=lr, seed=0, when="trained", moved_l2=m)
                          for p in ("a", "b") for lr, m in ((1e-3, 0.5), (5e-2, 12.3))])
    cap = C02.movement_caption(place, 2.05)
    assert "0.5 at lr 0.001 (0.2× the gap), 12.3 at lr 0.05 (6.0× the gap)" in cap and "2.05" in cap
    at = pd.DataFrame([dict(prior=p, seed=s, final_f1=f + s) for p, f in (("x", 50.0), ("y", 46.0)) for s in range(3)])
    cap = C02.f1_caption(at, 0.05)
    assert "over 3 seeds" in cap and "from 47.0 (y) to 51.0 (x), a spread of 4.0 points" in cap

    class Run:
        def __init__(self, prior, seed, losses, plateau):
            self.config = SimpleNamespace(prior=prior, seed=seed)
            self.metrics = {"plateaued": plateau}
            self._h = pd.DataFrame({"step": range(len(losses)), "loss": losses})

        def history(self):
            return self._h
    runs = [Run("a", 0, [3.0] * 5 + [1.0] * 5, False), Run("b", 0, [2.0] * 10, True)]
    from priorlib.compendium import captions
    cap = captions.training_loss(runs, "at lr 0.05")
    assert "end between 1.000 and 2.000" in cap and "1 of 2 runs stopped at the step cap" in cap
    assert "one curve per run at lr 0.05" in cap
