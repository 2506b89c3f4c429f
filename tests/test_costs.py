"""The evidence's cost model (priorlib.compendium.costs): phases read from a run's own logs, the price
of a planned run, the projection per chapter and the page, on known answers; and a real tiny run's
logs carry every phase."""
import json

import pytest

from priorlib.compendium import costs, performance
from priorlib.compendium.performance import costs_markdown
from priorlib.config import TrainConfig
from test_trainer import CFG, make_trainer


def _write_run(folder, steps, evals):
    folder.mkdir(parents=True)
    (folder / "history.jsonl").write_text("".join(json.dumps({"step": i + 1, "seconds": s}) + "\n"
                                                  for i, s in enumerate(steps)))
    (folder / "evals.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))


def test_phases_of_run_known_answer(tmp_path):
    _write_run(tmp_path / "r", [5.0, 1.0, 2.0, 1.5],  # the first step compiles: 5.0 - median(1, 2, 1.5) = 3.5
               [{"step": 0, "val_loss": 2.0, "plateau_loss": 2.0, "seconds": 10.0},
                {"step": 2, "plateau_loss": 1.5, "seconds": 3.0},
                {"step": 4, "val_loss": 1.0, "plateau_loss": 1.1, "seconds": 12.0, "generation_seconds": 30.0}])
    ph = costs.phases_of_run(tmp_path / "r")
    assert ph["train"] == 1.5 and ph["overhead"] == 3.5
    assert ph["curve"] == 3.0 and ph["full"] == 11.0 and ph["generation"] == 30.0
    assert ph["counts"] == {"steps": 4, "curve": 1, "full": 2, "generation": 1}
    assert ph["total"] == pytest.approx(9.5 + 3.0 + 22.0 + 30.0)


def test_price_and_projection_known_answers():
    unit = {"train": 2.0, "curve": 5.0, "full": 20.0, "generation": 60.0, "overhead": 10.0}
    cfg = TrainConfig(**{**CFG, "steps": 400, "eval_every": 50, "eval_generate": True})
    p = costs.price(cfg, unit)
    # 400 steps; curve evaluations at 50..350 (the one at 400 is the final, full one); 2 full passes; 1 decoding
    assert p == {"train": 800.0, "curve": 35.0, "full": 40.0, "generation": 60.0, "overhead": 10.0}
    both = costs.price(TrainConfig(**{**CFG, "steps": 400, "eval_every": 50, "eval_generate": True,
                                      "generate_initial": True}), unit)
    assert both["generation"] == 120.0
    assert costs.price(cfg.__class__(**{**CFG, "steps": 400, "eval_every": 50}), unit)["generation"] == 0.0
    units = {costs.kind_label(costs.kind(cfg)): unit}
    rows = costs.project({"02_x": [cfg, cfg]}, units)
    assert rows[0]["runs"] == 2 and rows[0]["cpu_h"] == pytest.approx(2 * 945 / 3600)
    assert rows[0]["eval_share"] == pytest.approx(135 / 945)
    page = costs_markdown({"date": "d", "machine": "m", "profile": "converged", "measure_steps": 9,
                           "measure_eval_every": 3, "units": units, "projection": rows})
    assert "| 02_x | 2 (+0) |" in page and f"**{2 * 945 / 3600:.1f} CPU-hours**" in page and "14%" in page


def test_hours_left_known_answers():
    """The runner's ETA: the price at the cap of each job left; an unpriced job costs the mean so far."""
    assert costs.hours_left([3600.0, 1800.0, 7200.0], 0, 0.0) == pytest.approx(3.5)
    # a resumed first job that took 60 s leaves the estimate of the others untouched
    assert costs.hours_left([3600.0, 1800.0, 7200.0], 1, 60.0) == pytest.approx(2.5)
    assert costs.hours_left([None, None, None], 2, 7200.0) == pytest.approx(1.0)
    assert costs.hours_left([900.0, None, 1800.0], 1, 360.0) == pytest.approx((360 + 1800) / 3600)
    assert costs.hours_left([None, 900.0], 0, 0.0) is None
    assert costs.hours_left([900.0], 1, 5.0) == 0.0


def test_prices_come_from_the_committed_measurement(tmp_path):
    unit = {"train": 2.0, "curve": 5.0, "full": 20.0, "generation": 60.0, "overhead": 10.0}
    cfg = TrainConfig(**{**CFG, "steps": 400, "eval_every": 50, "eval_generate": True})
    other = TrainConfig(**{**CFG, "max_length": 96})
    path = tmp_path / "costs.json"
    assert costs.prices([cfg], path) == [None]  # no measurement yet
    path.write_text(json.dumps({"units": {costs.kind_label(costs.kind(cfg)): unit}}))
    assert costs.prices([cfg, other, cfg], path) == [945.0, None, 945.0]


def test_kinds_separate_what_sets_the_price():
    a = TrainConfig(**CFG)
    assert costs.kind(a) == costs.kind(TrainConfig(**{**CFG, "prior": "xavier", "prior_params": {}, "seed": 3}))
    assert costs.kind(a) != costs.kind(TrainConfig(**{**CFG, "max_length": 96}))
    deep = TrainConfig(**{**CFG, "method": "deep", "token_prompt": False})
    assert "cached lower layers" in costs.kind_label(costs.kind(deep))


@pytest.mark.parametrize("deep", [dict(deep_layers=(-1,)), dict(deep_layers=(0,)), dict(deep_layers=(0, -1)),
                                  dict(deep_layers=(1, 2)), dict(deep_mode="carry", token_prompt=True)])
def test_a_kind_is_cached_where_the_trainer_caches(tiny, deep):
    """The price's "cached lower layers" is what the trainer does: it caches the layers below the lowest
    deep block, of which a block on layer 0 (§3.2's token-level "cut") leaves none."""
    from priorlib.prompts import PromptedLM
    cfg = TrainConfig(**{**CFG, "method": "deep", "token_prompt": False, **deep})
    lm = PromptedLM.build(tiny[0], method="deep", n_tokens=2, deep_layers=cfg.deep_layers, deep_mode=cfg.deep_mode,
                          token_prompt=cfg.token_prompt)
    assert ("cached lower layers" in costs.kind_label(costs.kind(cfg))) == (lm.lower_layers_frozen_below() > 0)


def test_a_real_run_logs_every_phase(tmp_path, tiny):
    make_trainer(tmp_path / "run", tiny, steps=4, eval_every=2).fit()
    ph = costs.phases_of_run(tmp_path / "run")
    assert ph["counts"] == {"steps": 4, "curve": 1, "full": 2, "generation": 0}
    assert ph["train"] > 0 and ph["curve"] > 0 and ph["full"] > 0


def test_only_runs_of_this_machine_price_its_kinds(tmp_path):
    """A bank holds runs of several machines; a run's seconds price this machine's kinds only when its
    manifest names this CPU model and core count (runs from before manifests named the CPU never do)."""
    import os
    from priorlib.hardware import cpu_model
    cases = {"here": {"cpu": cpu_model(), "cpus": os.cpu_count()},
             "other_cpu": {"cpu": cpu_model() + " (another)", "cpus": os.cpu_count()},
             "other_cores": {"cpu": cpu_model(), "cpus": os.cpu_count() + 1},
             "unnamed": {"processor": "x86_64", "cpus": os.cpu_count()}}
    for name, machine in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"machine": machine}))
    assert [n for n in cases if costs.made_here(tmp_path / n)] == ["here"]


def test_cpu_model_reads_the_model_name(tmp_path):
    from priorlib.hardware import cpu_model
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n")
    assert cpu_model(info) == "Intel(R) Xeon(R) Processor"
    assert cpu_model(tmp_path / "absent") not in ("", None)


def test_a_new_measurement_keeps_the_record_of_earlier_ones():
    last = {"date": "d1", "machine": "AMD EPYC, 2 cores", "profile": "converged",
            "projection": [{"cpu_h": 1.5}, {"cpu_h": 2.0}], "earlier": [{"date": "d0", "machine": "m0", "cpu_h": 9.0}]}
    assert costs.earlier_measurements(last, "converged") == [{"date": "d0", "machine": "m0", "cpu_h": 9.0},
                                                            {"date": "d1", "machine": "AMD EPYC, 2 cores", "cpu_h": 3.5}]
    assert costs.earlier_measurements(last, "cpu") == [] and costs.earlier_measurements(None, "converged") == []
    page = costs_markdown({"date": "d2", "machine": "Intel Xeon, 2 cores", "profile": "converged", "measure_steps": 9,
                           "measure_eval_every": 3, "units": {}, "projection": [],
                           "earlier": costs.earlier_measurements(last, "converged")})
    assert "d1, AMD EPYC, 2 cores: 3.5 CPU-hours" in page and "on the machine measured (Intel Xeon, 2 cores)" in page


def test_bank_actuals_read_what_finished_runs_took_known_answer(tmp_path, tiny):
    """The page's record of the bank: per kind, runs, CPU-hours and the pooled share of evaluating and
    decoding, from each run's own logs (here rewritten with known seconds); stale runs do not count."""
    from priorlib import bank, runstore
    tr = make_trainer(tmp_path / "run", tiny, steps=4, eval_every=2)
    tr.fit()
    dest = bank.export(runstore.Run(tmp_path / "run", tr.config), tmp_path / "evidence")
    # 4 steps of 10 s (the first one too: no overhead), a curve evaluation of 5 s, two full ones of 15 s, one decoding of 20 s
    _rewrite = [("history.jsonl", [{"step": i + 1, "seconds": 10.0} for i in range(4)]),
                ("evals.jsonl", [{"step": 0, "val_loss": 2.0, "plateau_loss": 2.0, "seconds": 15.0},
                                 {"step": 2, "plateau_loss": 1.5, "seconds": 5.0},
                                 {"step": 4, "val_loss": 1.0, "plateau_loss": 1.1, "seconds": 15.0,
                                  "generation_seconds": 20.0}])]
    for name, rows in _rewrite:
        (dest / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    [a] = costs.bank_actuals(tmp_path / "evidence")
    assert a["kind"] == costs.kind_label(costs.kind(tr.config)) and a["runs"] == 1 and a["median_steps"] == 4
    assert a["cpu_h"] == pytest.approx(95 / 3600) and a["eval_share"] == pytest.approx(55 / 95)
    assert a["eval_share_min"] == a["eval_share_max"] == pytest.approx(55 / 95)
    page = costs_markdown({"date": "d", "machine": "m", "profile": "converged", "measure_steps": 9,
                           "measure_eval_every": 3, "units": {}, "projection": [], "bank": [a]})
    assert a["phase_share"] == pytest.approx({"train": 40 / 95, "curve": 5 / 95, "full": 30 / 95, "generation": 20 / 95})
    assert "What the bank's 1 finished runs really took" in page
    assert "| 1 | 4 | 0.03 | 42.1% | 5.3% | 31.6% | 21.1% | 58% | 58–58% |" in page
    assert "full evaluations (the whole held-out set's loss at step 0 and at the last step) take 31.6%" in page
    # per run: training 10 s and curve 1.25 s per step, 50 s fixed; 15% at N = 0.85 * 50 / (0.15 * 11.25 - 1.25)
    assert performance.steps_for_share([a], 0.15) == pytest.approx(0.85 * 50 / (0.15 * 11.25 - 1.25))
    n = performance.steps_for_share([a], 0.15)
    assert (1.25 * n + 50) / (11.25 * n + 50) == pytest.approx(0.15)  # the share at that length, recomputed
    assert performance.steps_for_share([a], 0.10) is None  # the curve evaluations alone are 11% of every step
    assert f"a run of about **{n:.0f} steps**" in page
    ident = json.loads((dest / "config.json").read_text())
    ident["identity"]["engine"] = 0  # another engine version: stale
    (dest / "config.json").write_text(json.dumps(ident))
    assert costs.bank_actuals(tmp_path / "evidence") == []
