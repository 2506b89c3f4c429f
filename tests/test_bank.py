"""The evidence bank: what a banked run keeps, exact where it matters, found by key, stale when the
engine changed, and the compendium reading it before it trains."""
import json

import pytest
import torch

from priorlib import bank, runstore
from priorlib.checkpoint import list_checkpoints, load_checkpoint
from priorlib.config import TrainConfig
from priorlib.engine import ENGINE_VERSION
from test_trainer import CFG, toy_examples


@pytest.mark.parametrize("steps, frames, expected", [
    ([0, 50, 100, 150, 200], 2, [0, 50, 150, 200]),
    ([0, 10, 20], 8, [0, 10, 20]),
    (list(range(0, 101, 5)), 3, [0, 5, 50, 95, 100]),
    (list(range(0, 1001, 50)), 8, [0, 50, 200, 300, 450, 550, 700, 800, 950, 1000]),
])
def test_frame_steps_known_answers(steps, frames, expected):
    assert bank.frame_steps(steps, frames) == expected


@pytest.fixture
def finished(tmp_path, tiny):
    model, tok = tiny
    cfg = TrainConfig(**{**CFG, "steps": 12, "checkpoint_every": 1, "method": "deep", "deep_layers": (-1,)})
    from priorlib.trainer import Trainer
    out = tmp_path / "store" / cfg.key()
    Trainer(cfg, out, model=model, tokenizer=tok, progress=False, train_examples=toy_examples(40, 0),
            eval_examples=toy_examples(8, 1)).fit()
    return runstore.Run(out, cfg)


def test_export_keeps_exact_ends_small_frames_and_no_optimizer(tmp_path, finished):
    dest = bank.export(finished, tmp_path / "bank", frames=3, provenance={"git": {"commit": "abc", "dirty": False}})
    assert dest == tmp_path / "bank" / "runs" / finished.config.key()
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "evals.jsonl", "frames.safetensors",
                                                       "history.jsonl", "manifest.json", "metrics.json"]
    b = bank.find(finished.config, [tmp_path / "bank"])
    assert isinstance(b, bank.BankRun) and b.metrics == finished.metrics
    assert b.history().equals(finished.history())
    full = dict(finished.checkpoints())
    kept = b.checkpoints()
    assert [s for s, _ in kept] == bank.frame_steps(sorted(full), 3) == [0, 1, 6, 11, 12]
    for step, prompts in kept:
        for name, t in prompts.items():
            if step in (0, 12):
                assert torch.equal(t, full[step][name])  # the prior sample and the result: bitwise
            else:
                assert torch.allclose(t, full[step][name], rtol=1e-3, atol=1e-3) and not torch.equal(t, full[step][name])
    assert b.prompts().keys() == finished.prompts().keys() == {"soft", "deep.3"}
    man = b.manifest
    assert man["engine"] == ENGINE_VERSION and man["git"] == {"commit": "abc", "dirty": False} and man["frames"] == [0, 1, 6, 11, 12]
    assert man["bytes"] == sum(p.stat().st_size for p in dest.iterdir() if p.name != "manifest.json")
    assert man["train_seconds"] > 0 and man["torch"] == torch.__version__
    from priorlib.compendium.costs import made_here
    assert made_here(dest)  # the manifest names this machine's CPU, so its seconds can price this machine's kinds
    from safetensors import safe_open
    with safe_open(str(dest / "frames.safetensors"), framework="pt") as f:
        assert all(k.startswith("step/") for k in f.keys())  # no optimizer state, no RNG
    # a checkpoint of the store holds the optimizer; the bank's frames file is a fraction of one run folder
    assert load_checkpoint(list_checkpoints(finished.dir)[-1][1])["optim"]


def test_export_is_idempotent_and_refuses_unfinished_runs(tmp_path, finished):
    a = bank.export(finished, tmp_path / "bank")
    before = (a / "manifest.json").read_text()
    assert bank.export(finished, tmp_path / "bank") == a and (a / "manifest.json").read_text() == before
    (finished.dir / "metrics.json").unlink()
    with pytest.raises(ValueError, match="has not finished"):
        bank.export(finished, tmp_path / "other")
    assert not (tmp_path / "other" / "runs").exists() or not any((tmp_path / "other" / "runs").iterdir())


def test_find_misses_fails_on_a_tampered_folder_and_flags_stale_runs(tmp_path, finished):
    assert bank.find(finished.config, [tmp_path / "empty"]) is None
    dest = bank.export(finished, tmp_path / "bank")
    other = TrainConfig(**{**finished.config.to_dict(), "lr": 0.123})
    assert bank.find(other, [tmp_path / "bank"]) is None
    cfg = json.loads((dest / "config.json").read_text())
    cfg["identity"]["lr"] = 9.0
    (dest / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="is not the run of key"):
        bank.find(finished.config, [tmp_path / "bank"])
    cfg["identity"]["lr"] = finished.config.lr
    cfg["identity"]["engine"] = 1  # a run computed by engine 1
    (dest / "config.json").write_text(json.dumps(cfg))
    [e] = bank.entries(tmp_path / "bank")
    assert e.stale and e.engine == 1 and e.key == finished.config.key()


def test_run_all_reads_the_bank_first_and_exports_under_evidence_run(tmp_path, finished, tiny, monkeypatch):
    from priorlib.compendium import evidence, experiments
    model, tok = tiny
    monkeypatch.setenv("PRIORLIB_EVIDENCE", str(tmp_path / "evidence"))
    bank.export(finished, tmp_path / "evidence")

    def no_training(*a, **k):
        raise AssertionError("trained although the bank holds the run")
    monkeypatch.setattr(runstore, "train", no_training)
    [r] = experiments.run_all([finished.config], model=model, tokenizer=tok, progress=False)
    assert isinstance(r, bank.BankRun) and r.metrics == finished.metrics
    monkeypatch.undo()
    # under `evidence run`: a missing run trains into the store, lands in the bank, and the plan is saved
    monkeypatch.setenv("PRIORLIB_EVIDENCE", str(tmp_path / "evidence"))
    monkeypatch.setenv(evidence.EXPORT_ENV, "1")
    monkeypatch.setenv(evidence.CHAPTER_ENV, "02_lr_priors")
    monkeypatch.setenv("PRIORLIB_RUNS", str(tmp_path / "store"))
    new = TrainConfig(**{**CFG, "steps": 2, "seed": 5})
    monkeypatch.setattr(runstore, "train", lambda cfg, **k: runstore.Run(_train_toy(tmp_path, cfg, tiny), cfg))
    runs = experiments.run_all([finished.config, new], model=model, tokenizer=tok, progress=False)
    assert isinstance(runs[0], bank.BankRun) and not isinstance(runs[1], bank.BankRun)
    assert bank.find(new, [tmp_path / "evidence"]) is not None
    plan = json.loads((tmp_path / "evidence" / "plans" / "02_lr_priors.json").read_text())
    assert set(plan["runs"]) == {finished.config.key(), new.key()}
    [row, total] = evidence.status()
    assert (row["chapter"], row["planned"], row["present"], row["missing"]) == ("02_lr_priors", 2, 2, 0)
    assert total["present"] == 2 and total["stale"] == 0 and 0 < total["megabytes"] < 1


def test_bank_only_refuses_to_train_a_missing_run_before_anything_trains(tmp_path, finished, tiny, monkeypatch):
    """``priorlib book --bank-only``: a chapter asking for a run the bank lacks fails with one line naming
    it, before the runs the bank does hold are even read; with every run present nothing trains."""
    from priorlib.compendium import evidence, experiments
    from priorlib.errors import NotInBank
    model, tok = tiny
    monkeypatch.setenv("PRIORLIB_EVIDENCE", str(tmp_path / "evidence"))
    monkeypatch.setenv(evidence.BANK_ONLY_ENV, "1")
    monkeypatch.setenv(evidence.CHAPTER_ENV, "02_lr_priors")
    bank.export(finished, tmp_path / "evidence")
    trained = []
    monkeypatch.setattr(runstore, "train", lambda cfg, **k: trained.append(cfg))
    new = TrainConfig(**{**CFG, "steps": 2, "seed": 5})
    with pytest.raises(NotInBank) as err:
        experiments.run_all([finished.config, new], model=model, tokenizer=tok, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("02_lr_priors: 1 run(s) not in the evidence bank")
    assert new.key() in msg and "seed=5" in msg and trained == []
    [r] = experiments.run_all([finished.config], model=model, tokenizer=tok, progress=False)
    assert isinstance(r, bank.BankRun) and trained == []
    monkeypatch.setenv(evidence.BANK_ONLY_ENV, "0")  # off again: the missing run trains
    experiments.run_all([new], model=model, tokenizer=tok, progress=False)
    assert [c.key() for c in trained] == [new.key()]


def test_book_bank_only_checks_every_plan_before_a_notebook_executes(tmp_path, monkeypatch, capsys):
    """The book command's pre-check: an empty bank makes ``--bank-only`` fail with exit 2 and one line,
    and no notebook is executed."""
    from priorlib.compendium import book, cli
    monkeypatch.setenv("PRIORLIB_EVIDENCE", str(tmp_path / "empty"))
    executed = []
    monkeypatch.setattr(book, "execute_all", lambda *a, **k: executed.append(a))
    assert cli.main(["book", "--profile", "converged", "--only", "03", "--bank-only", "--no-build"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("priorlib book: error: 03_exclusion: 9 run(s) not in the evidence bank"), err
    assert len(err.splitlines()) == 1 and executed == []


def _train_toy(tmp_path, cfg, tiny):
    from priorlib.trainer import Trainer
    out = tmp_path / "store" / cfg.key()
    Trainer(cfg, out, model=tiny[0], tokenizer=tiny[1], progress=False, train_examples=toy_examples(40, 0),
            eval_examples=toy_examples(8, 1)).fit()
    return out


@pytest.mark.slow
def test_two_missing_runs_fan_out_through_submitit_local_and_land_in_the_bank(tmp_path, monkeypatch):
    """Issue 16: the evidence runner hands its missing runs to an existing executor (submitit's local
    mode: one process per job); both land in the bank, and nothing is missing afterwards."""
    from priorlib.compendium import evidence
    monkeypatch.setenv("PRIORLIB_EVIDENCE", str(tmp_path / "evidence"))
    monkeypatch.setenv("PRIORLIB_RUNS", str(tmp_path / "store"))
    monkeypatch.setenv(evidence.EXPORT_ENV, "1")
    monkeypatch.setenv(evidence.CHAPTER_ENV, "02_lr_priors")
    configs = [TrainConfig(model="tiny-random-llama", steps=2, batch_size=4, n_train=8, eval_size=4, max_length=128,
                           eval_generate=False, checkpoint_every=1, precision="fp32", seed=s) for s in (0, 1)]
    evidence.record_plan(configs)
    assert [c.key() for c in evidence.missing()] == [c.key() for c in configs]
    keys = evidence.compute(evidence.missing(), cluster="local", folder=tmp_path / "jobs", timeout_min=10)
    assert keys == [c.key() for c in configs]
    assert evidence.missing() == []
    for c in configs:
        hit = bank.find(c, [tmp_path / "evidence"])
        assert hit is not None and hit.metrics["steps"] == 2 and hit.manifest["engine"] == ENGINE_VERSION
    [row, total] = evidence.status()
    assert (row["planned"], row["present"], row["missing"]) == (2, 2, 0) and total["stale"] == 0
    assert not (tmp_path / "evidence" / "jobs").exists()  # job logs stay out of the bank


RUNNER = """
import sys
from priorlib.compendium import evidence
from priorlib.config import TrainConfig
cfg = TrainConfig(model="tiny-random-llama", steps=100000, batch_size=4, n_train=8, eval_size=4, max_length=128,
                  eval_generate=False, checkpoint_every=50, eval_every=100000, precision="fp32")
evidence.compute([cfg], cluster="local", folder=sys.argv[1], progress=False)
"""


@pytest.mark.slow
def test_killing_the_runner_cancels_its_local_job(tmp_path):
    """SIGTERM to ``evidence.compute`` (a killed ``priorlib evidence run``) stops its submitit job too: no
    training process is left running unattended. The runner starts as ``nohup ... &`` leaves it, with
    SIGINT ignored, which its job controllers would inherit (and so ignore submitit's cancel)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    env = {**os.environ, "PRIORLIB_EVIDENCE": str(tmp_path / "evidence"), "PRIORLIB_RUNS": str(tmp_path / "store")}
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path / "jobs")], env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.time() + 120
    history = None
    while time.time() < deadline:  # wait until the job is really training
        found = list((tmp_path / "store").glob("*/history.jsonl"))
        if found and found[0].stat().st_size > 0:
            history = found[0]
            break
        time.sleep(0.5)
    assert history is not None, "the job never started training"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    time.sleep(3)
    size = history.stat().st_size
    time.sleep(4)
    left = _processes_naming(tmp_path / "jobs")
    for pid in left:  # a failing test leaves no trainer behind either
        os.kill(pid, signal.SIGKILL)
    assert history.stat().st_size == size and not left, "the job kept training after its runner was killed"


def _processes_naming(folder) -> list[int]:
    """Pids of the processes whose command line names ``folder`` (Linux /proc): the job's controller and task."""
    import os
    from pathlib import Path
    out = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if str(folder).encode() in (p / "cmdline").read_bytes() and int(p.name) != os.getpid():
                out.append(int(p.name))
        except OSError:
            pass
    return out


def test_the_committed_bank_is_not_ignored_by_git():
    """The bank lives in evidence/runs/ and holds safetensors frames: both patterns (runs/, *.safetensors)
    are ignored elsewhere, so .gitignore must let the bank through, or its runs are silently never committed."""
    import subprocess
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    for name in ("frames.safetensors", "manifest.json", "history.jsonl"):
        r = subprocess.run(["git", "check-ignore", "-q", f"evidence/runs/0123456789abcdef/{name}"], cwd=repo)
        assert r.returncode == 1, f"git ignores the bank's {name}"
    r = subprocess.run(["git", "check-ignore", "-q", "runs/0123456789abcdef/frames.safetensors"], cwd=repo)
    assert r.returncode == 0  # a local run store is still ignored


def test_write_plans_saves_plan_all_so_status_and_missing_see_it(tmp_path, monkeypatch):
    """``evidence plan``: the chapters' plans land in evidence/plans without a notebook executing; status
    counts them as missing and ``missing`` returns exactly their configs, deduplicated, in plan order."""
    from priorlib.compendium import evidence
    monkeypatch.setenv("PRIORLIB_EVIDENCE", str(tmp_path / "evidence"))
    paths = evidence.write_plans("converged", only=["03", "07"])
    assert [p.stem for p in paths] == ["03_exclusion", "07_regularisation"]
    planned = evidence.plan_all("converged", only=["03", "07"])
    rows = evidence.status()
    for row, (name, configs) in zip(rows, planned.items()):
        assert (row["chapter"], row["planned"], row["present"], row["missing"]) == (name, len(configs), 0, len(configs))
    want = list(dict.fromkeys(c.key() for cs in planned.values() for c in cs))
    assert [c.key() for c in evidence.missing()] == want
    assert evidence.write_plans("converged", only=["01"]) == []  # chapter 01 trains nothing: no plan file


def test_missing_only_takes_the_plans_of_the_chapters_named(tmp_path, monkeypatch):
    """``evidence run --missing-only --only 07``: just 07's missing runs, in its plan order (a run it shares
    with 03 included); a name that is no chapter fails before anything trains."""
    from priorlib.compendium import evidence
    monkeypatch.setenv("PRIORLIB_EVIDENCE", str(tmp_path / "evidence"))
    evidence.write_plans("converged", only=["03", "07"])
    planned = evidence.plan_all("converged", only=["03", "07"])
    assert [c.key() for c in evidence.missing(only=["07"])] == [c.key() for c in planned["07_regularisation"]]
    assert [c.key() for c in evidence.missing(only=["exclusion"])] == [c.key() for c in planned["03_exclusion"]]
    assert evidence.missing(only=["05"]) == []  # a chapter without a plan here has nothing missing
    assert [c.key() for c in evidence.missing(only=["07", "03"])] == [c.key() for c in evidence.missing()]
    with pytest.raises(ValueError, match="no chapter '99'"):
        evidence.missing(only=["99"])
    assert evidence.choose_chapters(["02_a", "03_b"], ["b", "02"]) == ["02_a", "03_b"]
