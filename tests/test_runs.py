"""The run grids, tables and comparisons that chapters 02-04 and 07-09 share (priorlib.compendium.runs)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from priorlib.compendium import runs as sec
from priorlib.compendium import chapter
from priorlib.compendium.setup import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from chapter_checks import rows_and_placement  # noqa: E402

C02, C03, C04 = (chapter(n) for n in ("02_lr_priors", "03_exclusion", "04_activation_spaces"))


# ----------------------------------------------------------------------------------------------- settings


# ----------------------------------------------------------------------------------------------- settings
def test_settings_fill_profile_defaults_and_honour_overrides():
    s = setup("02_lr_priors", "cpu")
    assert s.model == "smollm2-135m" and s.priors == list(sec.TOKEN_PRIORS)
    assert s.replicate_lr == 5e-3 and 5e-4 in s.learning_rates
    cfg = s.base()
    assert cfg.steps == s.steps and cfg.batch_size == s.batch_size and cfg.eval_every == cfg.checkpoint_every
    o = setup("02_lr_priors", "cpu", learning_rates=[1e-3], seeds=[3], steps=7, out_dir="/tmp/x")
    assert o.learning_rates == [1e-3] and o.seeds == [3] and o.steps == 7 and o.replicate_lr is None
    assert o.run_overrides["checkpoint_every"] <= 7 and str(o.out_dir) == "/tmp/x"
    with pytest.raises(ValueError):
        setup("02_lr_priors", "nope")


def test_lr_seed_grid_replicates_only_at_the_chosen_rate():
    s = setup("02_lr_priors", "cpu")
    cfgs = sec.lr_seed_grid(s, s.base())
    n_first = len(s.priors) * len(s.learning_rates)
    assert len(cfgs) == n_first + len(s.priors) * (len(s.seeds) - 1)
    extra = [c for c in cfgs if c.seed != s.seeds[0]]
    assert extra and all(math.isclose(c.lr, s.replicate_lr) for c in extra)
    assert len({c.key() for c in cfgs}) == len(cfgs)
    s.replicate_lr = None
    assert len(sec.lr_seed_grid(s, s.base())) == n_first * len(s.seeds)


# ----------------------------------------------------------------------------------------------- statistics
def test_first_step_at_or_below():
    assert sec.first_step_at_or_below([0, 4, 8], [3.0, 2.0, 1.0], 2.0) == 4.0
    assert sec.first_step_at_or_below([8, 0, 4], [1.0, 3.0, 2.0], 2.5) == 4.0  # unsorted input
    assert math.isnan(sec.first_step_at_or_below([0, 4], [3.0, 2.9], 1.0))


def test_steps_metric_falls_back_to_validation_when_training_steps_cannot_tell_runs_apart():
    assert sec.steps_metric(pd.DataFrame({"steps_to_target": [5.0, 5.0, 5.0]})) == "val_steps_to_target"
    assert sec.steps_metric(pd.DataFrame({"steps_to_target": [5.0, 6.0, 5.0]})) == "steps_to_target"


def test_the_old_noise_rules_are_gone():
    assert not hasattr(sec, "same_within_noise") and not hasattr(sec, "group_compare")


def test_rank_correlation():
    assert sec.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert math.isnan(sec.rank_correlation([1, 2], [1, 2]))


def test_placement_summary_pairs_sampled_and_trained():
    _, place = rows_and_placement()
    ps = sec.placement_summary(place)
    assert len(ps) == 4 and "→" in ps.loc[0, "median_nn_l2"] and (ps["moved_l2"] > 0).all()


def test_a_chapter_profile_can_ask_for_runs_to_a_plateau(monkeypatch):
    """The converged design's fields reach every run's config through the one profile table."""
    from priorlib.compendium import profiles, runs
    entry = {**profiles.CHAPTERS["02_lr_priors"]["smoke"], "schedule": "constant", "stop_at_plateau": True,
             "eval_every": 3, "warmup_steps": 2, "plateau_window": 4, "plateau_tol": 0.02, "plateau_eval_size": 16,
             "eval_max_length": 256}
    monkeypatch.setitem(profiles.CHAPTERS["02_lr_priors"], "smoke", entry)
    cfg = runs.settings("02_lr_priors", "smoke").base()
    assert (cfg.schedule.value, cfg.stop_at_plateau, cfg.eval_every, cfg.warmup_steps) == ("constant", True, 3, 2)
    assert (cfg.plateau_window, cfg.plateau_tol, cfg.plateau_eval_size, cfg.eval_max_length) == (4, 0.02, 16, 256)
    plain = runs.settings("03_exclusion", "smoke").base()  # a chapter that sets none keeps the old design
    assert (plain.schedule.value, plain.stop_at_plateau) == ("linear", False)
