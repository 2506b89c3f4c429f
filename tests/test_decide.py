"""The compendium's decision helpers (priorlib.compendium.decide) and the margins table: known answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from priorlib.compendium import decide as D
from priorlib.compendium import margins as M
from priorlib.protocol import Outcome

ROOT = Path(__file__).resolve().parents[1]
NOISE = np.array([-0.004, 0.0, 0.004])  # three seeds, sd 0.004


def _arm(values, plateaued=True, name="a"):
    return D.Arm(name, np.asarray(values, float), plateaued)


def test_plateaued_reads_the_trainers_flag_and_a_missing_key_is_not_a_plateau():
    assert D.plateaued({"plateaued": True}) is True
    assert D.plateaued({"plateaued": False}) is False
    assert D.plateaued({}) is False and D.plateaued({"plateaued": None}) is False


def test_arm_selects_rows_and_reads_the_plateau_column():
    rows = pd.DataFrame({"prior": ["a", "a", "b"], "lr": [5e-3, 5e-3, 5e-3], "m": [1.0, 2.0, 3.0],
                         "plateaued": [True, True, False]})
    a = D.arm(rows, "m", prior="a", lr=5e-3)
    assert a.values.tolist() == [1.0, 2.0] and a.plateaued and a.name == "prior=a, lr=0.005"
    assert not D.arm(rows, "m", prior="b").plateaued
    assert not D.arm(rows.drop(columns="plateaued"), "m", prior="a").plateaued  # unknown -> not plateaued


def test_same_quality_known_answers():
    m = M.margin("final_val_loss")
    base = 2.0 + NOISE
    assert D.same_quality(_arm(base), _arm(base + 0.001)).outcome is Outcome.AGREES          # equal arms
    assert D.same_quality(_arm(base), _arm(base + 2 * m)).outcome is Outcome.CONTRADICTS     # two margins apart
    assert D.same_quality(_arm(base[:2]), _arm(base[:2])).outcome is Outcome.INCONCLUSIVE    # two seeds
    late = D.same_quality(_arm(base), _arm(base, plateaued=False, name="xavier"))
    assert late.outcome is Outcome.INCONCLUSIVE and "xavier" in late.reason                   # not plateaued
    noisy = D.same_quality(_arm([1.8, 2.0, 2.2]), _arm([1.9, 2.1, 2.3]))
    assert noisy.outcome is Outcome.INCONCLUSIVE
    assert D.same_quality(_arm([0.0] * 3), _arm([0.0] * 3), "final_accuracy").outcome is Outcome.UNINFORMATIVE


def test_same_quality_margin_is_the_tables():
    base = 40.0 + 10 * NOISE
    assert D.same_quality(_arm(base), _arm(base + 2.0), "final_f1").outcome is Outcome.AGREES   # inside ±3
    assert D.same_quality(_arm(base), _arm(base + 6.0), "final_f1").outcome is Outcome.CONTRADICTS
    with pytest.raises(KeyError, match="no equivalence margin"):
        D.same_quality(_arm(base), _arm(base), "steps_to_target")


def test_not_worse_and_faster():
    base = 2.0 + NOISE
    assert D.not_worse(_arm(base), _arm(base))[0] is Outcome.AGREES
    assert D.not_worse(_arm(base - 0.5), _arm(base))[0] is Outcome.AGREES         # much better
    assert D.not_worse(_arm(base + 0.5), _arm(base))[0] is Outcome.CONTRADICTS    # much worse
    assert D.not_worse(_arm(base - 0.5, plateaued=False), _arm(base))[0] is Outcome.INCONCLUSIVE
    assert D.faster(_arm([10, 11, 12]), _arm([20, 21, 22])).outcome is Outcome.AGREES
    assert D.faster(_arm([20, 21, 22]), _arm([10, 11, 12])).outcome is Outcome.CONTRADICTS
    assert D.faster(_arm([10, 20]), _arm([20, 30])).outcome is Outcome.INCONCLUSIVE


def test_combinations():
    A, C, I, T = Outcome.AGREES, Outcome.CONTRADICTS, Outcome.INCONCLUSIVE, Outcome.NOT_TESTABLE
    assert D.every([A, A]) is A and D.every([A, C, I]) is C and D.every([A, I]) is I and D.every([]) is I
    assert D.every([T, A]) is T
    assert D.some([C, A]) is A and D.some([C, C]) is C and D.some([C, I]) is I and D.some([]) is I
    assert D.opposite(A) is C and D.opposite(C) is A and D.opposite(I) is I


def test_movement_and_staying_within():
    from priorlib.config import TrainConfig
    cfg = TrainConfig(lr=1e-3, steps=20, warmup_steps=2)
    mv = D.movement([cfg], dim=100, yardstick=1.0)  # at most about 20 * 1e-3 * 10 = 0.2 < 1
    assert mv.outcome is Outcome.NOT_TESTABLE and mv.bound < 0.2
    assert D.stays_within([0.01, 0.02], 1.0, mv)[0] is Outcome.NOT_TESTABLE
    far = D.movement([TrainConfig(lr=0.5, steps=20, warmup_steps=2)], dim=100, yardstick=1.0)
    assert far.testable
    assert D.stays_within([0.1, 0.2], 1.0, far)[0] is Outcome.AGREES
    assert D.stays_within([0.1, 2.0], 1.0, far)[0] is Outcome.CONTRADICTS
    # a universal claim: agreeing needs 3 seeds per arm, one counterexample contradicts with any number
    outcome, why = D.stays_within([0.1, 0.2], 1.0, far, seeds=1)
    assert outcome is Outcome.INCONCLUSIVE and why.endswith("an arm has 1 seed (at least 3 are needed)")
    assert D.stays_within([0.1, 0.2], 1.0, far, seeds=3)[0] is Outcome.AGREES
    assert D.stays_within([0.1, 2.0], 1.0, far, seeds=1)[0] is Outcome.CONTRADICTS
    # the checkpoints' paths: ending within the yardstick is evidence only for vectors that travelled that far
    outcome, why = D.stays_within([0.1, 0.2], 1.0, far, seeds=3, paths=[0.5, 3.0])
    assert outcome is Outcome.INCONCLUSIVE and "1 of 2 runs travelled at least 1 over their checkpoints" in why
    assert D.stays_within([0.1, 0.2], 1.0, far, seeds=3, paths=[1.0, 3.0])[0] is Outcome.AGREES
    assert D.stays_within([0.1, 2.0], 1.0, far, seeds=3, paths=[0.5, 3.0])[0] is Outcome.CONTRADICTS


def test_placement_rows_path_is_the_sum_of_checkpoint_steps():
    import torch
    from types import SimpleNamespace as NS
    from priorlib.compendium import experiments as ex
    from priorlib.priors import Reference
    ref = Reference(torch.randn(300, 4, generator=torch.Generator().manual_seed(0)), "toy")
    start = torch.zeros(3, 4)
    there = start.clone(); there[:, 0] = 2.0       # out 2 along the first axis, then back 1: path 3, moved 1
    back = start.clone(); back[:, 0] = 1.0
    run = NS(config=NS(prior="p", lr=0.1, seed=0),
             checkpoints=lambda: [(0, {"soft": start}), (5, {"soft": there}), (10, {"soft": back})])
    rows = ex.placement_rows([run], ref)
    assert list(rows["moved_l2"]) == [1.0, 1.0] and list(rows["path_l2"]) == [3.0, 3.0]


def test_fewest_seeds_per_prior_and_rate():
    rows = pd.DataFrame({"prior": ["a", "a", "a", "b", "a"], "lr": [1e-3, 1e-3, 1e-3, 1e-3, 5e-2],
                         "seed": [0, 1, 2, 0, 0]})
    assert D.fewest_seeds(rows) == 1                      # b at 1e-3, and a at 5e-2
    assert D.fewest_seeds(rows[rows["prior"] == "a"], by=("prior",)) == 3
    assert D.fewest_seeds(rows.drop(columns="seed")) is None and D.fewest_seeds(rows.iloc[:0]) == 0


def test_cluster_uses_the_protocols_separation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 6.0
    assert D.cluster(x, y, seed=0).outcome is Outcome.AGREES
    assert D.cluster(x, rng.normal(size=(40, 3)), seed=0).outcome is not Outcome.AGREES


def test_one_cluster_is_an_equivalence_within_the_silhouette_margin():
    """Known answers on the interval: wholly within null + 0.05 -> one cluster; wholly beyond -> two;
    straddling -> inconclusive. A separation that beats the null by a hair is still one cluster."""
    from priorlib.protocol import Separation

    def sep(lo, hi, null_upper=0.002):
        return Separation("silhouette", (lo + hi) / 2, lo, hi, 0.95, 0.0, null_upper, 400, 400, lo > null_upper,
                          Outcome.AGREES if lo > null_upper else Outcome.INCONCLUSIVE, "")
    assert M.margin("silhouette") == 0.05
    out, why = D.one_cluster(sep(0.003, 0.006))  # beats the null (separated by the cluster rule), a hair apart
    assert out is Outcome.AGREES and why.startswith("one cluster:") and "0.002 + margin 0.05 = 0.052" in why
    assert D.one_cluster(sep(0.060, 0.090))[0] is Outcome.CONTRADICTS
    assert D.one_cluster(sep(0.030, 0.070))[0] is Outcome.INCONCLUSIVE
    assert D.one_cluster(sep(0.0521, 0.06), m=0.05)[0] is Outcome.CONTRADICTS
    assert D.one_cluster(sep(0.01, 0.0519))[0] is Outcome.AGREES
    assert D.one_cluster(sep(0.03, 0.07), m=0.1)[0] is Outcome.AGREES
    # on data: two draws of one distribution are one cluster; well-apart groups are two
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    assert D.one_cluster(D.cluster(x, rng.normal(size=(60, 3)), seed=0))[0] is Outcome.AGREES
    assert D.one_cluster(D.cluster(x, rng.normal(size=(60, 3)) + 6.0, seed=0))[0] is Outcome.CONTRADICTS


def test_margins_table_and_methods_page_agree():
    assert M.margin("final_val_loss") == 0.05 and M.margin("final_f1") == 3.0
    assert all(m.why and m.margin > 0 for m in M.MARGINS.values())
    text = M.rules_markdown()
    assert "| `final_val_loss` | ±0.05 |" in text and "*(exploratory)*" in text
    assert text in (ROOT / "book" / "methods.md").read_text()  # methods.md carries the table as rendered


def test_run_rows_carry_each_runs_plateau_flag():
    from types import SimpleNamespace
    from priorlib.compendium.experiments import run_rows

    def run(seed, metrics):
        cfg = SimpleNamespace(seed=seed, key=lambda: f"k{seed}")
        return SimpleNamespace(config=cfg, metrics={"initial": {"val_loss": 3.0}, "final": {"val_loss": 2.0},
                                                    "median_s_per_step": 0.1, **metrics})
    rows = run_rows([run(0, {"plateaued": True}), run(1, {"plateaued": False}), run(2, {})], fields=("seed",))
    assert rows["plateaued"].tolist() == [True, False, False]
    assert not D.arm(rows, "final_val_loss", seed=2).plateaued and D.arm(rows, "final_val_loss", seed=0).plateaued
