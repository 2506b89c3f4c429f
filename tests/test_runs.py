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


# ----------------------------------------------------------------------------------------------- sentences
_WHY = "move prompts too little at the paper's rates to see where they head"


def test_lr_sentence_reads_right_for_added_paper_and_mixed_rates():
    only_added = setup("03_exclusion", "smoke", learning_rates=[5e-2], steps=20)
    assert sec.lr_sentence(only_added) == ("Learning rate: 0.05, not from the paper's set (5e-4, 1e-3, 5e-3): "
                                           f"runs of 20 steps {_WHY}.")
    assert "Added here" not in sec.lr_sentence(only_added)
    two_added = setup("03_exclusion", "smoke", learning_rates=[1e-2, 5e-2], steps=20)
    assert sec.lr_sentence(two_added).startswith("Learning rates: 0.01, 0.05, none from the paper's set")
    assert sec.lr_sentence(setup("03_exclusion", "smoke", learning_rates=[5e-4, 1e-3])) == \
        "Learning rates: 0.0005, 0.001, all from the paper's set (5e-4, 1e-3, 5e-3)."
    assert sec.lr_sentence(setup("03_exclusion", "smoke", learning_rates=[5e-3])) == \
        "Learning rate: 0.005, from the paper's set (5e-4, 1e-3, 5e-3)."
    mix = setup("03_exclusion", "smoke", learning_rates=[1e-3, 5e-2], steps=20)
    assert sec.lr_sentence(mix) == ("Learning rates: 0.001, 0.05. From the paper's set (5e-4, 1e-3, 5e-3): 0.001. "
                                    f"Added here: 0.05, because runs of 20 steps {_WHY}.")
    # a plateau-stopped design: the step count is a cap
    assert "runs of up to 300 steps" in sec.lr_sentence(setup("03_exclusion", "converged"))


def test_steps_phrase_names_the_cap_only_when_runs_stop_at_a_plateau():
    from types import SimpleNamespace as NS
    assert sec.steps_phrase(NS(steps=300, batch_size=8, stop_at_plateau=True)) == \
        "up to 300 steps of batch 8 (the cap; a run stops earlier at its plateau)"
    assert sec.steps_phrase(NS(steps=4, batch_size=2, stop_at_plateau=False)) == "4 steps of batch 2"


def test_plateau_sentence_counts_the_runs_that_plateaued():
    rows = pd.DataFrame({"plateaued": [True] + [False] * 8})
    assert sec.plateau_sentence(rows, cap=300) == (
        "1 of the 9 runs reached the plateau rule and 8 stopped at the 300-step cap; a quality comparison of runs "
        "not known to have plateaued reads inconclusive.")
    assert sec.plateau_sentence(rows.iloc[1:], cap=300) == (
        "None of the 8 runs reached the plateau rule: all stopped at the 300-step cap, and a quality comparison "
        "of runs not known to have plateaued reads inconclusive.")
    assert sec.plateau_sentence(rows.iloc[:1], cap=300) == "The 1 run reached the plateau rule before the 300-step cap."
    assert sec.plateau_sentence(pd.DataFrame({"plateaued": [True, True]})) == \
        "All 2 runs reached the plateau rule before the step cap."
    assert sec.plateau_sentence(pd.DataFrame({"x": [1, 2]}), cap=4, rule=False) == (
        "The 2 runs trained a fixed 4 steps without the plateau rule: none is known to have plateaued, so a "
        "quality comparison between them reads inconclusive.")


def test_target_sentence_prints_both_targets():
    txt = sec.target_sentence(1.1294, 0.8)
    assert "first reaches 1.129 nats/token" in txt and "held-out curve first reaches 0.800 nats/token" in txt
    assert "worst final value of this chapter's runs" in txt


def _stored_run(root, prior, seed, losses, curve, plateaued):
    """A run on disk with known training losses (one per step) and held-out curve ``[(step, loss)]``."""
    import json
    from priorlib.runstore import Run
    cfg = setup("03_exclusion", "smoke").base()
    cfg = type(cfg).from_dict({**cfg.to_dict(), "prior": prior, "seed": seed})
    d = root / f"{prior}-{seed}"
    d.mkdir()
    final = {"val_loss": curve[-1][1], "f1": 50.0}
    (d / "metrics.json").write_text(json.dumps({"initial": {"val_loss": curve[0][1]}, "final": final,
                                                "median_s_per_step": 0.1, "plateaued": plateaued}))
    (d / "history.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(losses)))
    (d / "evals.jsonl").write_text("".join(json.dumps({"step": s, "plateau_loss": v}) + "\n" for s, v in curve))
    return Run(d, cfg)


def test_quality_exposes_both_targets(tmp_path):
    runs = [_stored_run(tmp_path, "exclusion", 0, [3.0] * 5 + [1.0] * 5, [(0, 3.0), (5, 2.0), (10, 1.5)], True),
            _stored_run(tmp_path, "fitted-gaussian", 0, [3.0] * 10, [(0, 3.0), (5, 2.5), (10, 2.5)], False)]
    rows, table, target = sec.quality(runs)
    assert target == rows.attrs["train_target"] == table.attrs["train_target"] == 3.0  # worst 5-step mean
    assert rows.attrs["val_target"] == table.attrs["val_target"] == 2.5                # worst final held-out value
    assert list(rows["val_steps_to_target"]) == [5.0, 5.0] and list(rows["plateaued"]) == [True, False]
    assert sec.plateau_sentence(rows, cap=10).startswith("1 of the 2 runs reached the plateau rule")


# ----------------------------------------------------------------------------------------------- placement table
def test_placement_summary_never_prints_negative_zero_and_names_its_statistic():
    _, place = rows_and_placement()
    place.loc[place["when"] == "sampled", "median_nn_cos"] = -0.0
    place.loc[place["when"] == "trained", "median_nn_cos"] = -0.0001  # rounds to -0.0
    ps = sec.placement_summary(place)
    assert set(ps["median_nn_cos"]) == {"0 → 0"} and set(ps["seeds"]) == {2}
    assert sec.number(-0.0) == "0" and sec.number(0.0134) == "0.0134" and sec.number(1650.0) == "1650"
    shown = ps._shown().columns
    assert "Mahalanobis, median over a prompt's vectors, mean over seeds" in shown
    assert "Share in HDR, mean over seeds" in shown and "median_mahalanobis" in ps  # the data keeps its names


def test_trained_mahalanobis_is_the_tables_statistic():
    place = pd.DataFrame([dict(prior="exclusion", lr=0.05, seed=k, when=w, median_nn_l2=1.0, median_nn_cos=0.5,
                               median_mahalanobis=m, share_in_hdr=0.0, moved_l2=1.0)
                          for k, m in enumerate((9.0, 9.0, 30.0)) for w in ("sampled", "trained")])
    assert sec.trained_mahalanobis(place)["exclusion"] == 16.0  # the mean of the seeds' medians, not their median (9)
    assert sec.placement_summary(place).loc[0, "median_mahalanobis"] == "16 → 16"


# ----------------------------------------------------------------------------------------------- distance caption
def test_pooled_says_what_a_group_pools():
    from types import SimpleNamespace as NS
    assert sec.pooled([NS(lr=1e-3, seed=0)]) == ""
    assert sec.pooled([NS(lr=x, seed=0) for x in (5e-2, 1e-3, 1e-2)]) == "3 runs (learning rates 0.001, 0.01, 0.05)"
    assert sec.pooled([NS(lr=5e-2, seed=k) for k in (0, 1)]) == "2 runs (seeds 0, 1)"


def test_beyond_caption_reads_sampled_to_trained_per_group():
    pool = "3 runs (learning rates 0.001, 0.01, 0.05)"
    txt = sec.beyond_caption({"isotropic": (0.0, 2 / 3), "xavier": (0.0, 1.0)}, {"isotropic": pool, "xavier": pool},
                             q99=31.84, n_rows=1024, n_total=49152)
    assert txt == ("The black curves: 1,024 rows drawn at random (seed 0) from the 49,152 token embeddings; their "
                   "Mahalanobis distance has 99th percentile 31.8. Share of prompt vectors farther than every one of "
                   "those rows, sampled (the prior's draw) → trained (the last checkpoint): isotropic 0% → 67%; "
                   "xavier 0% → 100%. Each share is pooled over 3 runs (learning rates 0.001, 0.01, 0.05).")
    mixed = sec.beyond_caption({"a": (0.0, 0.5), "b": (1.0, 1.0)}, {"a": "2 runs (seeds 0, 1)", "b": ""},
                               q99=3.0, n_rows=10, n_total=100)
    assert "a 0% → 50%, pooled over 2 runs (seeds 0, 1); b 100% → 100%." in mixed and "Each share" not in mixed
