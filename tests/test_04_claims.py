"""Chapter 04's two 4.4 claims with known answers: ``fit-misses-activations`` (a held-out share inside a
Gaussian fit's prediction region) and ``squad-gaussian-same-quality`` (TOST of the activation-Gaussian soft
arm against the token-embedding one). Each rule is shown to agree, to contradict and to stay undecided."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from priorlib.compendium import chapter
from priorlib.compendium.verdicts import Outcome
from priorlib.config import TrainConfig
from priorlib.stats import StreamingGaussian

C04 = chapter("04_activation_spaces")
A, C, I = Outcome.AGREES, Outcome.CONTRADICTS, Outcome.INCONCLUSIVE


# ------------------------------------------------------------------------------- fit-misses-activations


def test_represents_poorly_known_answers():
    rp = C04.represents_poorly
    big = dict(n_fit=20_000, dim=64)
    assert rp(800, 5, 1000, **big)[0] is A                  # far too few inside
    assert rp(4990, 0, 5000, **big)[0] is A                 # far too many inside: the region is too wide
    assert rp(950, 40, 1000, **big)[0] is A                 # 4% beyond the 99.9% region: heavy tails
    assert rp(950, 1, 1000, **big)[0] is C                  # as a faithful fit
    assert rp(91, 0, 100, **big)[0] is I                    # CI straddles 0.90
    assert rp(950, 1, 1000, n_fit=639, dim=64)[0] is I      # under 10 rows per dimension: shrunk, no exact region
    assert rp(950, 1, 1000, n_fit=640, dim=64)[0] is C
    assert rp(0, 0, 0, **big)[0] is I


def _fit(x: torch.Tensor):
    return StreamingGaussian(x.shape[1]).update(x.double()).fit("none")


def test_fit_coverage_of_a_gaussian_source_contradicts_and_corrects_for_estimation():
    g = torch.Generator().manual_seed(0)
    d, n_fit = 40, 800                                       # 20 rows per dimension
    mix = torch.randn(d, d, generator=g) / d ** 0.5 + torch.eye(d)
    fit_rows, held = (torch.randn(n, d, generator=g) @ mix.T + 3.0 for n in (n_fit, 6000))
    cov = C04.fit_coverage(_fit(fit_rows), held, n_fit)
    # the prediction region holds ~95% of new rows of a Gaussian source; the plain chi² one much fewer
    assert cov["share_inside"] == pytest.approx(0.95, abs=0.015)
    assert cov["faithful_share_chi2"] < 0.93
    assert cov["share_inside_chi2"] == pytest.approx(cov["faithful_share_chi2"], abs=0.03)
    assert cov["draws_share_inside_chi2"] == pytest.approx(0.95, abs=0.015)   # by construction
    assert C04.misses_activations({"p": cov})[0] is C


def test_fit_coverage_of_a_heavy_tailed_source_agrees():
    g = torch.Generator().manual_seed(1)
    d, n_fit = 16, 4000
    def rows(n):  # multivariate t with 3 degrees of freedom: Gaussian rows over a chi-square scale
        return torch.randn(n, d, generator=g) / (torch.distributions.Chi2(3.0).sample((n, 1)) / 3.0).sqrt()
    torch.manual_seed(1)
    cov = C04.fit_coverage(_fit(rows(n_fit)), rows(4000), n_fit)
    assert cov["share_inside"] > 0.95 or cov["share_beyond"] > 0.01
    out, why = C04.misses_activations({"a": cov})
    assert out is A and "at `a`" in why
    # both points must agree; one faithful point makes the claim not shown everywhere
    gauss = torch.randn(8000, d, generator=g)
    faithful = C04.fit_coverage(_fit(gauss[:4000]), gauss[4000:], 4000)
    assert C04.misses_activations({"a": cov, "b": faithful})[0] is C
    assert C04.misses_activations(None)[0] is I and C04.misses_activations({})[0] is I


def test_prediction_radius_tends_to_chi2():
    from scipy.stats import chi2
    assert C04.prediction_radius2(10, 10_000_000, 0.95) == pytest.approx(chi2.ppf(0.95, 10), rel=1e-4)
    assert C04.prediction_radius2(10, 100, 0.95) > chi2.ppf(0.95, 10)
    assert np.isnan(C04.prediction_radius2(10, 10, 0.95))


# -------------------------------------------------------------------------- squad-gaussian-same-quality


def _soft_rows(act=2.0, tokens=2.0, n_seeds=3, plateaued=True):
    out = []
    for variant, loss in ((f"soft ({C04.ACT_SPACE})", act), ("soft (tokens)", tokens)):
        for k in range(n_seeds):
            out.append(dict(variant=variant, prior="fitted-gaussian", seed=k, final_val_loss=loss + 0.01 * k,
                            plateaued=plateaued))
    # an arm of another prior must not enter the comparison
    out.append(dict(variant="soft (tokens)", prior="xavier", seed=0, final_val_loss=9.0, plateaued=plateaued))
    return pd.DataFrame(out)


def test_activation_vs_token_gaussian_known_answers():
    f = C04.activation_vs_token_gaussian
    assert f(_soft_rows()).outcome is A
    got = f(_soft_rows(act=2.038, tokens=1.144))            # the earlier measurement: far beyond the margin
    assert got.outcome is C and got.estimate == pytest.approx(0.894)
    assert f(_soft_rows(n_seeds=2)).outcome is I
    assert f(_soft_rows(plateaued=False)).outcome is I
    assert f(_soft_rows(act=2.06)).outcome is not A          # between: not shown the same


def _rows():
    """Deep rows the other four verdicts need (see tests/test_04_activation_spaces.py)."""
    return pd.DataFrame([dict(variant=v, prior=p, seed=k, steps_to_target=10.0 + k, val_steps_to_target=10.0,
                              final_val_loss=2.0 + 0.01 * k, final_f1=40.0, plateaued=True)
                         for v, p in (("deep cut", "fitted-gaussian"), ("deep cut", "xavier"),
                                      ("deep carry", "fitted-gaussian")) for k in range(3)])


def test_verdicts_04_carry_both_claims():
    from priorlib.config import TrainConfig
    rng = np.random.default_rng(0)
    sep = {"deep": C04.cluster_separation(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 5.0)}
    place = pd.DataFrame([dict(when="trained", moved_l2=0.1)] * 3)
    rows = pd.concat([_rows(), _soft_rows(act=2.038, tokens=1.144)], ignore_index=True)
    cov = {"p": dict(inside=800, beyond=5, n_held_out=1000, n_fit=20_000, dim=64, draws_share_inside_chi2=0.95)}
    out, num = C04.verdicts(sep, rows, place, 1.0, configs=[TrainConfig(lr=0.5, steps=20, warmup_steps=2)], dim=64,
                            coverage=cov)
    by = {v.claim_id: v for v in out}
    assert by["fit-misses-activations"].outcome is A and "by construction" in by["fit-misses-activations"].measured
    assert by["squad-gaussian-same-quality"].outcome is C
    assert num["fit_misses_activations"] == "agrees"
    assert num["activation_vs_token_gaussian_val_loss"]["outcome"] == "contradicts"
    out, _ = C04.verdicts(sep, _rows(), place, 1.0)          # no coverage and no soft arms: both undecided
    by = {v.claim_id: v for v in out}
    assert by["fit-misses-activations"].outcome is I and by["squad-gaussian-same-quality"].outcome is I


class _FakeRun:
    """A deep run as trained_concentration reads it: a config and its checkpoints."""

    def __init__(self, prior, mode, step0, final, seed):
        self.config = TrainConfig(method="deep", prior=prior, deep_mode=mode, lr=0.05, steps=300, warmup_steps=30,
                                  seed=seed)
        self._ck = [(0, {"deep.29": torch.as_tensor(step0)}), (300, {"deep.29": torch.as_tensor(final)})]

    def checkpoints(self):
        return self._ck


def test_trained_concentration_reads_the_fitted_cut_runs_only():
    """The §4.6 measure on the chapter's runs: only fitted-Gaussian 'cut' runs count (a wide Xavier run beside
    them changes nothing); tight trained blocks with a wide prior agree, and the verdict carries its id."""
    rng = np.random.default_rng(0)
    ref = torch.as_tensor(rng.normal(size=(400, 16)), dtype=torch.float32)
    tight = [_FakeRun("fitted-gaussian", "cut", rng.normal(size=(20, 16)), 0.1 * rng.normal(size=(20, 16)), s)
             for s in range(3)]
    wide = _FakeRun("xavier", "cut", rng.normal(size=(20, 16)), 5.0 * rng.normal(size=(20, 16)), 0)
    carry = _FakeRun("fitted-gaussian", "carry", rng.normal(size=(20, 16)), 5.0 * rng.normal(size=(20, 16)), 0)
    res = C04.trained_concentration(tight + [wide, carry], ref, "deep.29", act_gap=1.0, lr_scale=100.0)
    assert res["n_runs"] == 3 and res["outcome"] is A and res["ratio"] < 0.2
    spread = C04.trained_concentration([_FakeRun("fitted-gaussian", "cut", rng.normal(size=(20, 16)),
                                                 3.0 * rng.normal(size=(20, 16)), s) for s in range(3)],
                                       ref, "deep.29", act_gap=1.0, lr_scale=100.0)
    assert spread["outcome"] is C
    with pytest.raises(ValueError, match="fitted-Gaussian deep 'cut'"):
        C04.trained_concentration([wide], ref, "deep.29", act_gap=1.0)
    rows = _rows()
    sep = {"deep": C04.cluster_separation(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 5.0)}
    place = pd.DataFrame([dict(when="trained", moved_l2=0.1)] * 3)
    out, num = C04.verdicts(sep, rows, place, 1.0, concentrated=res)
    v = {x.claim_id: x for x in out}["squad-activations-concentrated"]
    assert v.outcome is A and "spread ratio" in v.measured and num["deep_block_concentration"]["outcome"] == "agrees"


def test_represents_poorly_counts_texts_not_token_rows():
    """88% of 1,000 rows inside is wholly below the 90-99% band on 1,000 independent rows; if those rows come
    from 20 texts whose tokens move together, the interval over 20 units overlaps the band: inconclusive."""
    assert C04.represents_poorly(880, 1, 1000, n_fit=20_000, dim=64)[0] is A
    outcome, why = C04.represents_poorly(880, 1, 1000, n_fit=20_000, dim=64, n_units=20)
    assert outcome is I and "88.0% of 1000 held-out rows inside the 95% region, intervals over 20 held-out texts" in why
    cov = C04.fit_coverage(_fit(torch.randn(4000, 8, generator=torch.Generator().manual_seed(3))),
                           torch.randn(500, 8, generator=torch.Generator().manual_seed(4)), 4000, 25)
    assert cov["n_units"] == 25 and C04.fit_coverage(_fit(torch.randn(4000, 8)), torch.randn(30, 8), 4000, 99)["n_units"] == 30
