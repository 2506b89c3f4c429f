"""Issue 14: the bad-input suite. Every case ends in a one-line error naming the bad value or file, or in
correct behaviour (pinned here), and nothing is lost.

Categories (see the report of issue 14): arguments, data files, checkpoints (and run-folder logs), banks,
concurrent writers, kills. A case that must fail before the model loads runs with ``load_model``
replaced by a function that fails the test, and within 2 s.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from priorlib.checkpoint import list_checkpoints, load_checkpoint, read_jsonl
from priorlib.config import TrainConfig
from priorlib.errors import LockedError, TrainingDiverged
from priorlib.locks import LOCK_NAME, folder_lock, holder
from priorlib.trainer import Trainer

sys.path.insert(0, os.path.dirname(__file__))
from test_trainer import CFG, make_trainer, toy_examples  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
       "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# ------------------------------------------------------------------------------------------ helpers
def _article(title: str, questions: int = 2) -> dict:
    context = f"{title} is a town. Its river is the Seine and its capital is Paris, a large city."
    qas = [{"id": f"{title}-{q}", "question": f"What is the capital ({q})?",
            "answers": [{"text": "Paris", "answer_start": context.index("Paris")}]} for q in range(questions)]
    return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}


def squad_folder(root: Path, payload=None, name="dev.json", raw: bytes | None = None) -> Path:
    """``root/squad/<name>``: a valid 30-article v1.1 file, or ``payload`` / ``raw`` bytes."""
    folder = root / "squad"
    folder.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (folder / name).write_bytes(raw)
    else:
        payload = {"version": "1.1", "data": [_article(f"T{i:02d}") for i in range(30)]} if payload is None else payload
        (folder / name).write_text(json.dumps(payload))
    return folder / name


@pytest.fixture
def data(tmp_path, monkeypatch):
    root = tmp_path / "data"
    squad_folder(root)
    monkeypatch.setenv("PRIORLIB_DATA", str(root))
    return root


@pytest.fixture
def no_model(monkeypatch):
    """The model must not load in this test: a bad input has to fail before."""
    import priorlib.models

    def refuse(*a, **k):
        raise AssertionError("the model was loaded, but this input should have failed before")
    monkeypatch.setattr(priorlib.models, "load_model", refuse)


ARGS = ["--model", "tiny-random-llama", "--steps", "4", "--batch-size", "2", "--eval-size", "4", "--n-train", "8",
        "--max-length", "128", "--n-tokens", "4", "--precision", "fp32", "--checkpoint-every", "2",
        "--eval-every", "2", "--quiet"]


def cli(capsys, *args) -> tuple[int, str, float]:
    """``priorlib train ...`` in this process: (exit status, stderr, seconds)."""
    from priorlib.compendium.cli import main
    t0 = time.perf_counter()
    try:
        rc = main(["train", *args])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    return rc, capsys.readouterr().err.strip(), time.perf_counter() - t0


def assert_one_line(rc, err, seconds, *fragments):
    assert rc == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(("priorlib train: error: ", "priorlib: error: ")), err
    for f in fragments:
        assert f in err, (f, err)
    assert seconds < 2.0, f"took {seconds:.1f} s before failing"


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else None


# ------------------------------------------------------------------------------------------ arguments
NAN, INF = "nan", "inf"
ARGUMENT_CASES = [
    (["--lr", INF], "lr must be a finite number, got inf"),
    (["--lr", NAN], "lr must be a finite number, got nan"),
    (["--lr", "-1e-3"], "lr must be positive, got -0.001"),  # no '=' needed any more
    (["--lr", "0"], "lr must be positive, got 0"),
    (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    (["--lr", ""], "argument --lr: invalid float value: ''"),
    (["--weight-decay", NAN], "weight_decay must be a finite number, got nan"),
    (["--weight-decay", INF], "weight_decay must be a finite number, got inf"),
    (["--weight-decay", "-1"], "weight_decay must be >= 0 (got -1.0)"),
    (["--reg-prior-l2", INF], "reg_prior_l2 must be a finite number, got inf"),
    (["--reg-mahalanobis", NAN], "reg_mahalanobis must be a finite number, got nan"),
    (["--reg-mahalanobis-hinge", INF], "reg_mahalanobis_hinge must be a finite number"),
    (["--reg-nearest-token", "-1"], "nearest_token must be >= 0, got -1.0"),
    (["--steps", "0"], "steps must be a positive integer, got 0"),
    (["--steps", "1.5"], "argument --steps: invalid int value: '1.5'"),
    (["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
    (["--n-tokens", "-3"], "n_tokens must be a positive integer, got -3"),
    (["--grad-accum", "0"], "grad_accum must be a positive integer, got 0"),
    (["--warmup-steps", "-1"], "warmup_steps must be a non-negative integer, got -1"),
    (["--seed", "-1"], "seed must be a non-negative integer, got -1"),
    (["--max-length", "1"], "max_length must be at least 10"),
    (["--n-train", "1"], "n_train=1 cannot fill one batch of 2"),
    (["--eval-size", "0"], "eval_size must be a positive integer, got 0"),
    (["--eval-every", "0"], "eval_every must be a positive integer, got 0"),
    (["--checkpoint-every", "0"], "checkpoint_every must be a positive integer, got 0"),
    (["--precision", "fp8"], "precision must be one of ['bf16', 'fp32'], got 'fp8'"),
    (["--task", "chess"], "got 'chess'"),
    (["--method", "sideways"], "method must be one of ['soft', 'deep'], got 'sideways'"),
    (["--deep-mode", "sideways"], "deep_mode must be 'cut' or 'carry', got 'sideways'"),
    (["--deep-layers", "a,b"], "--deep-layers must be comma-separated integers, got 'a,b'"),
    (["--model", "gpt-17"], "unknown model 'gpt-17'"),
    (["--prior", "nope"], "unknown prior 'nope'"),
    (["--prior-param", "sigma=inf"], "sigma must be a finite number, got 'inf'"),
    (["--prior-param", "sigma=nan"], "sigma must be a finite number, got 'nan'"),
    (["--prior-param", "sigma=-1"], "sigma"),
    (["--prior-param", "bogus=1"], "has no parameter 'bogus'"),
    (["--prior-param", "sigma"], "expected KEY=VALUE, got 'sigma'"),
    (["--method", "deep", "--deep-prior", "isotropic", "--deep-prior-param", "sigma=inf"], "sigma must be a finite"),
    (["--prior", "vocab-sample", "--prior-param", "top_k=0"], "top_k must be >= 1, got 0"),
    (["--prior", "vocab-sample", "--prior-param", "top_k=many"], "top_k='many'"),
    (["--soft-space", "bogus"], "soft_space must be 'tokens' or a hook point"),
    (["--soft-space", "layers.x.resid_post"], "got 'layers.x.resid_post'"),
    (["--prior", "interpolation"], "mixes two activation spaces"),
    (["--device", "bogus"], "device must be cpu, cuda, cuda:N or mps, got 'bogus'"),
    (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    (["--resume", "--resume-or-start"], "give --resume or --resume-or-start, not both"),
]
if not torch.cuda.is_available():
    ARGUMENT_CASES += [(["--device", "cuda"], "device 'cuda': this machine has no CUDA GPU"),
                       (["--device", "cuda:7"], "device 'cuda:7': this machine has no CUDA GPU")]


@pytest.mark.parametrize("args,fragment", ARGUMENT_CASES, ids=[" ".join(a) for a, _ in ARGUMENT_CASES])
def test_bad_argument_is_one_line_before_the_model(tmp_path, capsys, data, no_model, args, fragment):
    out = tmp_path / "run"
    rc, err, s = cli(capsys, *ARGS, *args, "--out", str(out))
    assert_one_line(rc, err, s, fragment)
    assert not out.exists()  # nothing written to --out


def _run_config(**over) -> dict:
    """What config.json holds for ARGS (+ ``over``)."""
    cfg = TrainConfig(model="tiny-random-llama", steps=4, batch_size=2, eval_size=4, n_train=8, max_length=128,
                      n_tokens=4, precision="fp32", checkpoint_every=2, eval_every=2, **over)
    return {"config": cfg.to_dict(), "identity": cfg.identity(), "key": cfg.key()}


def _file(path: Path) -> Path:
    path.write_text("x")
    return path


OUT_CASES = {
    "out is a file": (lambda d: _file(d), "is a file, not a folder"),
    "out under a file": (lambda d: _file(d) / "sub" / "run", "lies under"),
    "out unwritable": (lambda d: Path("/sys/priorlib-test/run"), "cannot write to /sys"),
    "out holds another run": (lambda d: (d.mkdir(), (d / "config.json").write_text(json.dumps(_run_config(lr=0.5))))
                              and d, "holds another run"),
    "out holds other files": (lambda d: (d.mkdir(), (d / "notes.txt").write_text("mine")) and d,
                              "is not empty and holds no priorlib run"),
    "config.json corrupt": (lambda d: (d.mkdir(), (d / "config.json").write_text('{"config": {')) and d,
                            "config.json: not a valid run config (line 1 column 13"),
    "config.json a list": (lambda d: (d.mkdir(), (d / "config.json").write_text("[1, 2]")) and d,
                           "config.json: not a valid run config (expected an object, got list)"),
    "config.json no identity": (lambda d: (d.mkdir(), (d / "config.json").write_text('{"key": "x"}')) and d,
                                "config.json: not a valid run config (no 'identity' object)"),
    "unfinished run without --resume": (
        lambda d: (d.mkdir(), (d / "config.json").write_text(json.dumps(_run_config())), (d / "checkpoints").mkdir(),
                   (d / "checkpoints" / "step_000000.safetensors").write_bytes(b"")) and d,
        "holds an unfinished run of this config; pass --resume"),
}


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_bad_out_folder_is_one_line_naming_it(tmp_path, capsys, data, no_model, case):
    make, fragment = OUT_CASES[case]
    out = make(tmp_path / "out")
    before = snapshot(tmp_path / "out")
    rc, err, s = cli(capsys, *ARGS, "--out", str(out))
    assert_one_line(rc, err, s, fragment, str(out) if case != "config.json corrupt" else "config.json")
    assert snapshot(tmp_path / "out") == before  # untouched


def test_resume_on_a_new_folder_is_an_error(tmp_path, capsys, data, no_model):
    rc, err, s = cli(capsys, *ARGS, "--out", str(tmp_path / "typo"), "--resume")
    assert_one_line(rc, err, s, f"{tmp_path / 'typo'} holds no run to resume", "--resume-or-start")
    assert not (tmp_path / "typo").exists()


def test_resume_or_start_starts_then_resumes(tmp_path, capsys, data):
    out = tmp_path / "run"
    rc, err, _ = cli(capsys, *ARGS, "--out", str(out), "--resume-or-start")
    assert rc == 0, err
    assert [r["step"] for r in read_jsonl(out / "history.jsonl")] == [1, 2, 3, 4]
    first = (out / "metrics.json").read_text()
    rc, err, _ = cli(capsys, *ARGS, "--out", str(out), "--resume")  # finished: reused, not redone
    assert rc == 0 and (out / "metrics.json").read_text() == first
    assert [r["step"] for r in read_jsonl(out / "history.jsonl")] == [1, 2, 3, 4]


def test_failed_run_leaves_the_folder_free_for_the_corrected_command(tmp_path, capsys, data):
    """A check that needs the model (layer 99 of a 4-layer model, a hook point past its top) or the prior's
    reference texts (more than the data holds) fails before anything is written: the corrected command then
    runs (no "holds another run")."""
    out = tmp_path / "run"
    for bad, fragment in ((["--method", "deep", "--deep-layers", "99"], "layer index 99 is outside the model's 4 layers"),
                          (["--soft-space", "layers.9.resid_post"], "layer index 9 is outside"),
                          (["--soft-space", "layers.0.resid_post", "--prior", "fitted-gaussian"],
                           "asked for 256 squad texts, only 48 exist")):
        rc, err, _ = cli(capsys, *ARGS, *bad, "--out", str(out))
        assert rc == 2 and "\n" not in err and fragment in err, err
        assert not out.exists()
    rc, err, _ = cli(capsys, *ARGS, "--out", str(out))
    assert rc == 0, err


# ------------------------------------------------------------------------------------------ data files
def _payload(**over):
    p = {"version": "1.1", "data": [_article(f"T{i:02d}") for i in range(30)]}
    p.update(over)
    return p


def _bad_answer():
    p = _payload()
    p["data"][3]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 2
    return p


def _duplicate_id():
    p = _payload()
    p["data"][4]["paragraphs"][0]["qas"][1]["id"] = p["data"][4]["paragraphs"][0]["qas"][0]["id"]
    return p


def _no_answers():
    p = _payload()
    p["data"][5]["paragraphs"][0]["qas"][0]["answers"] = []
    return p


VALID = json.dumps(_payload()).encode()
DATA_CASES = {
    "version 2.0": (dict(payload=_payload(version="v2.0")), "field 'version' must be '1.1' (SQuAD v1.1), got 'v2.0'"),
    "version missing": (dict(payload={"data": _payload()["data"]}), "got None"),
    "malformed JSON": (dict(raw=b'{"version": "1.1", "data": [}'), "malformed JSON at line 1"),
    "truncated file": (dict(raw=VALID[: len(VALID) // 2]), "malformed JSON"),
    "zero bytes": (dict(raw=b""), "malformed JSON"),
    "not UTF-8": (dict(raw=b'{"version": "1.1", "data": ["\xff\xfe"]}'), "not valid UTF-8"),
    "top level a list": (dict(payload=[1, 2]), "expected an object"),
    "data missing": (dict(payload={"version": "1.1"}), "missing field 'data'"),
    "answer_start wrong": (dict(payload=_bad_answer()), "answer_start"),
    "duplicate id": (dict(payload=_duplicate_id()), "T04-0"),
    "question without answers": (dict(payload=_no_answers()), "T05-0"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_squad_file_is_one_line_naming_it(tmp_path, capsys, monkeypatch, no_model, case):
    kw, fragment = DATA_CASES[case]
    path = squad_folder(tmp_path / "data", **kw)
    monkeypatch.setenv("PRIORLIB_DATA", str(tmp_path / "data"))
    rc, err, s = cli(capsys, *ARGS, "--out", str(tmp_path / "run"))
    assert_one_line(rc, err, s, str(path), fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case,fragment", [("no folder", "does not exist"), ("empty folder", "no *.json files"),
                                           ("too few examples", "only")])
def test_missing_or_short_data_is_one_line(tmp_path, capsys, monkeypatch, no_model, case, fragment):
    root = tmp_path / "data"
    if case == "empty folder":
        (root / "squad").mkdir(parents=True)
    elif case == "too few examples":
        squad_folder(root)
    monkeypatch.setenv("PRIORLIB_DATA", str(root))
    extra = ["--n-train", "5000"] if case == "too few examples" else []
    rc, err, s = cli(capsys, *ARGS, *extra, "--out", str(tmp_path / "run"))
    assert_one_line(rc, err, s, fragment)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny):
    """A straight 8-step run (checkpoints 0, 3, 6, 8): the reference every resumed run must match."""
    out = tmp_path_factory.mktemp("ck") / "straight"
    make_trainer(out, tiny).fit()
    return out


def _unfinished(finished: Path, dst: Path) -> Path:
    shutil.copytree(finished, dst)
    (dst / "metrics.json").unlink()
    return dst


def _edit(path: Path, tensors=None, meta=None, drop=(), raw: bytes | None = None):
    if raw is not None:
        path.write_bytes(raw)
        return
    t = load_file(str(path))
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        m = dict(f.metadata())
    for k in drop:
        (t if not k.startswith("meta:") else m).pop(k.removeprefix("meta:"))
    t.update(tensors or {})
    m.update(meta or {})
    save_file({k: v.contiguous() for k, v in t.items()}, str(path), metadata=m)


def _soft(path):
    return load_file(str(path))["prompt/soft"]


CK = "step_000008.safetensors"
HALF = b"<first half>"
CHECKPOINT_CASES = {
    "missing prompt/soft": (dict(drop=["prompt/soft"]), "holds no prompt tensors"),
    "soft renamed": (dict(drop=["prompt/soft"], tensors={"prompt/soft2": torch.zeros(4, 64)}), "missing prompt/soft"),
    "extra prompt tensor": (dict(tensors={"prompt/deep.1": torch.zeros(4, 64)}), "unexpected prompt/deep.1"),
    "soft wrong shape": (dict(tensors={"prompt/soft": torch.zeros(3, 64)}), "prompt/soft has shape (3, 64), expected (4, 64)"),
    "soft 1-D": (dict(tensors={"prompt/soft": torch.zeros(256)}), "prompt/soft has shape (256,)"),
    "soft fp16": (dict(tensors={"prompt/soft": torch.zeros(4, 64, dtype=torch.float16)}), "prompt/soft is float16"),
    "soft int64": (dict(tensors={"prompt/soft": torch.ones(4, 64, dtype=torch.int64)}), "prompt/soft is int64"),
    "soft NaN": (dict(tensors={"prompt/soft": torch.full((4, 64), float("nan"))}), "prompt/soft holds 256 non-finite"),
    "soft inf": (dict(tensors={"prompt/soft": torch.zeros(4, 64).index_fill_(0, torch.tensor([1]), float("inf"))}),
                 "prompt/soft holds 64 non-finite"),
    "step 999": (dict(meta={"step": "999"}), "step metadata 999 does not match the file name"),
    "step not a number": (dict(meta={"step": "eight"}), "step metadata 'eight' is not an integer"),
    "step missing": (dict(drop=["meta:step"]), "step metadata None is not an integer"),
    "step of another file": (dict(meta={"step": "6"}), "step metadata 6 does not match the file name"),
    "foreign format": (dict(meta={"format": "other-1"}), "not a priorlib checkpoint (format 'other-1')"),
    "extra not JSON": (dict(meta={"extra": "{oops"}), "its 'extra' metadata is not a JSON object"),
    "rng wrong shape": (dict(tensors={"rng/torch": torch.zeros(10, dtype=torch.uint8)}), "rng/torch is uint8 (10,)"),
    "rng wrong dtype": (dict(tensors={"rng/torch": torch.zeros(5056)}), "rng/torch is float32"),
    "rng missing": (dict(drop=["rng/torch"]), "holds no RNG state"),
    "optim wrong shape": (dict(tensors={"optim/soft/exp_avg": torch.zeros(3, 64)}), "optim/soft/exp_avg is float32 (3, 64)"),
    "optim missing state": (dict(drop=["optim/soft/exp_avg_sq"]), "optimizer state of soft must hold"),
    "optim NaN": (dict(tensors={"optim/soft/exp_avg_sq": torch.full((4, 64), float("nan"))}),
                  "optim/soft/exp_avg_sq holds 256 non-finite"),
    "optim negative second moment": (dict(tensors={"optim/soft/exp_avg_sq": -torch.ones(4, 64)}), "negative"),
    "optim step 999": (dict(tensors={"optim/soft/step": torch.tensor(999.0)}), "optim/soft/step is [999.0]"),
    "optim for unknown tensor": (dict(tensors={"optim/deep.7/exp_avg": torch.zeros(4, 64)}), "unknown prompt tensor(s) deep.7"),
    "unexpected tensor": (dict(tensors={"junk": torch.zeros(1)}), "unexpected tensor 'junk'"),
    "truncated file": (dict(raw=HALF), "not a readable safetensors checkpoint"),
    "zero bytes": (dict(raw=b""), "not a readable safetensors checkpoint"),
    "not safetensors": (dict(raw=b"\x80\x04K\x01." * 40), "not a readable safetensors checkpoint"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny, finished, capsys, case):
    """Each bad latest checkpoint is named with its problem, moved aside, and the run resumes from the newest
    valid one (step 6) to the same prompts, bitwise, as the run that never broke."""
    kw, fragment = CHECKPOINT_CASES[case]
    out = _unfinished(finished, tmp_path / "run")
    if kw.get("raw") == HALF:  # the first half of the real file
        kw = dict(raw=(out / "checkpoints" / CK).read_bytes()[:4000])
    _edit(out / "checkpoints" / CK, **kw)
    with pytest.raises(ValueError) as err:
        load_checkpoint(out / "checkpoints" / CK, expect={"soft": (4, 64)}, max_step=8)
    assert str(out / "checkpoints" / CK) in str(err.value) and fragment in str(err.value), str(err.value)
    t = make_trainer(out, tiny, resume=True)
    t.fit()
    assert len(t.fallbacks) == 1 and fragment in t.fallbacks[0] and "resuming from step_000006" in t.fallbacks[0]
    assert "resuming from step_000006" in capsys.readouterr().err
    assert (out / "checkpoints" / (CK + ".invalid")).exists()
    assert torch.equal(_soft(out / "checkpoints" / CK), _soft(finished / "checkpoints" / CK))
    assert [r["step"] for r in read_jsonl(out / "history.jsonl")] == list(range(1, 9))


def test_every_checkpoint_bad_is_one_line_error(tmp_path, tiny, finished):
    out = _unfinished(finished, tmp_path / "run")
    for _, path in list_checkpoints(out):
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="no usable checkpoint .*step_000008.safetensors: not a readable"):
        make_trainer(out, tiny, resume=True).fit()


def test_torn_last_history_row_is_dropped_on_resume(tmp_path, tiny, finished):
    out = _unfinished(finished, tmp_path / "run")
    (out / "checkpoints" / CK).unlink()  # killed after step 8's row, during its checkpoint
    with open(out / "history.jsonl", "a") as f:
        f.write('{"step": 9, "loss": 10.7')  # and a torn row
    with open(out / "evals.jsonl", "a") as f:
        f.write('{"step": 8, "val_lo')
    make_trainer(out, tiny, resume=True).fit()
    ref = read_jsonl(finished / "history.jsonl")
    got = read_jsonl(out / "history.jsonl")
    assert [r["loss"] for r in got] == [r["loss"] for r in ref]
    assert torch.equal(_soft(out / "checkpoints" / CK), _soft(finished / "checkpoints" / CK))


def test_corrupt_history_row_in_the_middle_names_file_and_line(tmp_path, tiny, finished):
    out = _unfinished(finished, tmp_path / "run")
    rows = (out / "history.jsonl").read_text().splitlines()
    rows[2] = rows[2][:20]
    (out / "history.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"history.jsonl: line 3 is not a valid log row"):
        make_trainer(out, tiny, resume=True).fit()


def test_corrupt_metrics_of_a_finished_run_names_the_file(tmp_path, tiny, finished):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "metrics.json").write_text("{")
    with pytest.raises(ValueError, match="metrics.json: not a valid JSON file"):
        make_trainer(out, tiny).fit()


def _assert_strict_and_valid(out: Path):
    for _, path in list_checkpoints(out):
        load_checkpoint(path, expect={"soft": (4, 64)})  # finite, valid
    for name in ("history.jsonl", "evals.jsonl", "metrics.json"):
        if (out / name).exists():
            for line in (out / name).read_text().splitlines():
                if line.strip():
                    json.loads(line if name != "metrics.json" else (out / name).read_text(),
                               parse_constant=lambda c: pytest.fail(f"{name} holds {c}"))


def test_non_finite_loss_stops_the_run_keeping_the_last_good_checkpoint(tmp_path, tiny, monkeypatch):
    """The finite-loss guard: a NaN loss at step 5 stops training in one line, before the optimizer step,
    with checkpoints 0 and 3 kept (finite) and strict-JSON logs; the folder then resumes from step 3."""
    from priorlib.prompts import PromptedLM
    real, calls = PromptedLM.answer_loss, []

    def nan_at_5(self, *a, **k):
        loss, n = real(self, *a, **k)
        calls.append(1)
        return (loss * float("nan"), n) if len(calls) == 5 else (loss, n)
    monkeypatch.setattr(PromptedLM, "answer_loss", nan_at_5)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 5: the loss is nan .*"
                                                r"the last good checkpoint, step_000003.safetensors, is kept"):
        make_trainer(out, tiny).fit()
    assert [s for s, _ in list_checkpoints(out)] == [0, 3]
    assert [r["step"] for r in read_jsonl(out / "history.jsonl")] == [1, 2, 3, 4]
    _assert_strict_and_valid(out)
    monkeypatch.setattr(PromptedLM, "answer_loss", real)
    make_trainer(out, tiny, resume=True).fit()
    assert [r["step"] for r in read_jsonl(out / "history.jsonl")] == list(range(1, 9))


def test_overflowing_learning_rate_stops_in_one_line(tmp_path, tiny):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"diverged at step 1: the optimizer step overflowed"):
        make_trainer(out, tiny, lr=1e38, warmup_steps=0).fit()
    assert [s for s, _ in list_checkpoints(out)] == [0]
    _assert_strict_and_valid(out)


def test_huge_but_finite_learning_rate_is_allowed_and_stays_finite(tmp_path, tiny):
    """Design choice, pinned: lr=1e30 is finite, so it is the user's to choose; the prompt grows to ~1e30
    but the model's RMSNorm keeps the loss finite, so the run finishes with finite, strict-JSON results."""
    out = tmp_path / "run"
    m = make_trainer(out, tiny, lr=1e30, warmup_steps=0, steps=4).fit()
    assert torch.isfinite(torch.tensor(m["final"]["val_loss"]))
    _assert_strict_and_valid(out)


def test_prior_drawing_non_finite_prompt_is_refused_before_writing(tmp_path, tiny):
    t = make_trainer(tmp_path / "run", tiny)
    t._initial = (torch.full((4, 64), float("nan")), None, {})
    with pytest.raises(ValueError, match="non-finite initial soft prompt"):
        t.fit()
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ banks
@pytest.fixture
def banks(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache"))
    from priorlib.priors import posterior
    posterior._LOADED.clear()
    yield posterior
    posterior._LOADED.clear()


def _write_bank(posterior, tensors: dict | None = None, meta: str = "{}", raw: bytes | None = None) -> str:
    """A bank file named as the old loader would have accepted it (hash of its float/long-cast content)."""
    if raw is not None:
        sha = "f" * 20
        path = posterior.bank_path(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return sha
    try:
        x, p = tensors["vectors"].float(), tensors["prompts"].long()
        sha = posterior.bank_hash(x, p, json.loads(meta) if meta.startswith(("{", "[")) else {})
    except (KeyError, RuntimeError, ValueError):
        sha = "e" * 20
    path = posterior.bank_path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"meta": meta})
    return sha


V, P = torch.randn(8, 64), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
BANK_CASES = {
    "missing vectors": (dict(tensors={"prompts": P}), "must hold exactly the tensors 'prompts' and 'vectors', got ['prompts']"),
    "missing prompts": (dict(tensors={"vectors": V}), "got ['vectors']"),
    "extra tensor": (dict(tensors={"vectors": V, "prompts": P, "x": P.clone()}), "got ['prompts', 'vectors', 'x']"),
    "1-D vectors": (dict(tensors={"vectors": V.flatten(), "prompts": P}), "needs vectors [N >= 2, d]"),
    "3-D vectors": (dict(tensors={"vectors": V.reshape(2, 4, 64), "prompts": P}), "got (2, 4, 64)"),
    "one row": (dict(tensors={"vectors": V[:1], "prompts": P[:1]}), "got (1, 64)"),
    "NaN row": (dict(tensors={"vectors": V.clone().index_fill_(0, torch.tensor([2]), float("nan")), "prompts": P}),
                "1 of 8 rows are NaN or infinite"),
    "inf row": (dict(tensors={"vectors": V.clone().index_fill_(0, torch.tensor([2, 5]), float("inf")), "prompts": P}),
                "2 of 8 rows"),
    "float64": (dict(tensors={"vectors": V.double(), "prompts": P}), "vectors are float64, expected float32"),
    "bool": (dict(tensors={"vectors": V > 0, "prompts": P}), "vectors are bool, expected float32"),
    "fp16": (dict(tensors={"vectors": V.half(), "prompts": P}), "vectors are float16"),
    "float prompts": (dict(tensors={"vectors": V, "prompts": P.float()}), "prompts are float32, expected int64"),
    "int32 prompts": (dict(tensors={"vectors": V, "prompts": P.int()}), "prompts are int32"),
    "index length mismatch": (dict(tensors={"vectors": V, "prompts": P[:5]}), "one index per row (8), got shape (5,)"),
    "negative index": (dict(tensors={"vectors": V, "prompts": P - 1}), "indices must be 0..P-1"),
    "index gap": (dict(tensors={"vectors": V, "prompts": P * 2}), "got [0, 2]"),
    "meta a list": (dict(tensors={"vectors": V, "prompts": P}, meta="[1, 2]"), "its meta must be a JSON object, got list"),
    "meta not JSON": (dict(tensors={"vectors": V, "prompts": P}, meta="{oops"), "its meta is not valid JSON"),
    "truncated file": (dict(raw=b"\x50\x00\x00\x00\x00\x00\x00\x00{\"vectors\""), "not a readable safetensors file"),
    "zero bytes": (dict(raw=b""), "not a readable safetensors file"),
    "not safetensors": (dict(raw=b"\x80\x04\x95" + b"pickle" * 30), "not a readable safetensors file"),
}


@pytest.mark.parametrize("case", list(BANK_CASES))
def test_bad_bank_is_one_line_naming_the_file(banks, case):
    kw, fragment = BANK_CASES[case]
    sha = _write_bank(banks, **kw)
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as err:
        TrainConfig(**{**CFG, "prior": "posterior", "prior_params": {"bank": sha}})
    msg = str(err.value)
    assert "\n" not in msg and str(banks.bank_path(sha)) in msg and fragment in msg, msg
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("case,sha,fragment", [
    ("hash mismatch", None, "does not match its hash"), ("missing bank", "0" * 20, "no bank 00000000000000000000"),
    ("bad hash string", "xyz", "20-hex-digit hash"),
])
def test_bank_reference_errors(banks, case, sha, fragment):
    if sha is None:
        good = banks.save_bank(V, prompts=P)
        sha = "a" * 20
        shutil.copy(banks.bank_path(good), banks.bank_path(sha))
    with pytest.raises(ValueError, match=fragment):
        TrainConfig(**{**CFG, "prior": "posterior", "prior_params": {"bank": sha}})


@pytest.mark.parametrize("vectors,prompts,meta,fragment", [
    (torch.full((4, 8), float("nan")), None, None, "finite"),
    (torch.randn(4, 8), None, [1, 2], "meta must be a JSON object"),
    (torch.randn(4, 8), torch.tensor([0.0, 0.0, 1.0, 1.0]), None, "integer indices"),
    (torch.randn(4, 8), torch.tensor([0, 0, -1, 1]), None, "0..P-1"),
])
def test_save_bank_refuses_what_load_bank_would(banks, vectors, prompts, meta, fragment):
    with pytest.raises(ValueError, match=fragment):
        banks.save_bank(vectors, meta, prompts=prompts)
    assert not banks.bank_dir().exists() or not list(banks.bank_dir().iterdir())


def test_bad_bank_from_the_command_line(tmp_path, capsys, data, banks, no_model):
    sha = _write_bank(banks, tensors={"vectors": V.double(), "prompts": P})
    rc, err, s = cli(capsys, *ARGS, "--prior", "posterior", "--prior-param", f"bank={sha}", "--out", str(tmp_path / "r"))
    assert_one_line(rc, err, s, str(banks.bank_path(sha)), "float64")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------ concurrent writers
HOLDER = textwrap.dedent("""
    import sys, time
    from priorlib.locks import folder_lock
    with folder_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _hold(folder: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_fails_at_once_naming_the_holder(tmp_path, tiny):
    out = tmp_path / "run"
    proc = _hold(out, 30)
    try:
        t0 = time.perf_counter()
        with pytest.raises(LockedError, match=rf"run folder {out} is locked by PID {proc.pid} on .*--wait"):
            make_trainer(out, tiny).fit()
        assert time.perf_counter() - t0 < 2.0
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing of ours written
    finally:
        proc.kill()
        proc.wait()


def test_second_writer_waits_when_asked(tmp_path, tiny):
    out = tmp_path / "run"
    proc = _hold(out, 1.0)
    t = make_trainer(out, tiny, steps=2, checkpoint_every=1)
    t.wait = 60
    t0 = time.perf_counter()
    t.fit()
    assert time.perf_counter() - t0 > 0.3  # it waited for the holder
    proc.wait()
    assert [r["step"] for r in read_jsonl(out / "history.jsonl")] == [1, 2]


def test_locked_folder_from_the_command_line(tmp_path, capsys, data):
    out = tmp_path / "run"
    proc = _hold(out, 30)
    try:
        rc, err, _ = cli(capsys, *ARGS, "--out", str(out))
        assert rc == 2 and "\n" not in err and f"is locked by PID {proc.pid}" in err, err
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_holder_is_stale_and_taken_over(tmp_path, tiny):
    out = tmp_path / "run"
    proc = _hold(out, 30)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert holder(out)["pid"] == proc.pid  # what the dead holder wrote is still there...
    with folder_lock(out):
        assert holder(out)["pid"] == os.getpid()  # ...and overwritten by the next writer


def test_lock_of_a_failed_new_run_leaves_no_folder(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with folder_lock(out):
            raise RuntimeError("boom")
    assert not out.exists()


TRAIN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from priorlib.models import load_model
    from test_trainer import make_trainer
    from test_bad_inputs import slow_step
    import priorlib.trainer
    try:
        t = make_trainer({out!r}, load_model("tiny-random-llama"), steps=6, checkpoint_every=2, lr={lr})
        t.wait = {wait}
        t.callbacks.append(slow_step())
        t.fit()
    except (priorlib.errors.PriorlibError, FileExistsError) as err:
        print(err, file=sys.stderr)
        raise SystemExit(2)
""")


def slow_step():
    from priorlib.trainer import Callback

    class Slow(Callback):  # long enough for the second writer to arrive mid-run
        def on_step(self, trainer, logs):
            time.sleep(0.3)
    return Slow()


def _train_proc(out, lr, wait):
    code = TRAIN.format(tests=os.path.dirname(__file__), out=str(out), lr=lr, wait=wait)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def _wait_for_lock(out: Path, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        info = holder(out)
        if info and info.get("pid") == proc.pid:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the first writer never took the lock")


@pytest.mark.slow
@pytest.mark.parametrize("second_lr,wait", [(0.1, False), (0.05, True)])
def test_two_trainings_into_one_folder_lose_nothing(tmp_path, second_lr, wait):
    """Different config, no wait: the second fails at once naming the first, which finishes intact. Same config
    with --wait: the second queues, then reuses the finished run; the history is never doubled."""
    out = tmp_path / "run"
    a = _train_proc(out, 0.05, False)
    _wait_for_lock(out, a)
    b = _train_proc(out, second_lr, wait)
    _, err_b = b.communicate(timeout=300)
    _, err_a = a.communicate(timeout=300)
    assert a.returncode == 0, err_a[-2000:]
    if wait:
        assert b.returncode == 0, err_b[-2000:]
    else:
        # refused at once: by the lock, or (once the first has written its config) as another run's folder
        assert b.returncode == 2, err_b[-2000:]
        assert f"is locked by PID {a.pid}" in err_b or f"{out} holds another run" in err_b, err_b[-2000:]
    assert json.loads((out / "config.json").read_text())["config"]["lr"] == 0.05
    assert [r["step"] for r in read_jsonl(out / "history.jsonl")] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in list_checkpoints(out)] == [0, 2, 4, 6]


STORE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from priorlib import runstore
    from priorlib.config import TrainConfig
    from priorlib.models import load_model
    from test_trainer import CFG, toy_examples
    from test_bad_inputs import slow_step
    model, tok = load_model("tiny-random-llama")
    run = runstore.train(TrainConfig(**{{**CFG, "steps": 6}}), root={root!r}, model=model, tokenizer=tok, progress=False,
                         train_examples=toy_examples(40, 0), eval_examples=toy_examples(8, 1), callbacks=[slow_step()])
    print(len(run.history()), run.steps_to(100.0))
""")


@pytest.mark.slow
def test_two_runstore_trainings_of_one_key_share_one_history(tmp_path):
    code = STORE.format(tests=os.path.dirname(__file__), root=str(tmp_path / "store"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=ENV) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e[-2000:]
        assert o.split() == ["6", "1"], o  # 6 rows for 6 steps, in both processes
    (run_dir,) = list((tmp_path / "store").iterdir())
    assert [r["step"] for r in read_jsonl(run_dir / "history.jsonl")] == [1, 2, 3, 4, 5, 6]


def test_concurrent_cache_stores_never_share_a_temp_file(tmp_path, monkeypatch):
    import numpy as np
    from priorlib import cache
    monkeypatch.setenv("PRIORLIB_ARTIFACTS", str(tmp_path / "art"))
    errors = []

    def store(i):
        try:
            for _ in range(5):
                cache._store({"t": torch.arange(1000.0), "a": np.arange(1000)}, {"n": 1},
                             *cache._paths("x", cache.params_key("x", {"n": 1})))
        except Exception as err:  # pragma: no cover - the failure being tested for
            errors.append(err)
    threads = [threading.Thread(target=store, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = cache.cached("x", {"n": 1}, lambda: pytest.fail("should be a hit"), verbose=False)
    assert torch.equal(got["t"], torch.arange(1000.0)) and (got["a"] == np.arange(1000)).all()
    assert not [p for p in (tmp_path / "art").iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------ kills
KILL = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from priorlib.models import load_model
    import priorlib.checkpoint as ck
    import priorlib.trainer as tr
    from test_trainer import make_trainer
    mode = {mode!r}
    real_save = ck.save_file
    def torn_save(tensors, path, metadata=None):  # a kill half-way through writing step 6's checkpoint
        if "step_000006" in path:
            real_save(tensors, path, metadata=metadata)
            data = open(path, "rb").read()
            open(path, "wb").write(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(tensors, path, metadata=metadata)
    if mode == "checkpoint":
        ck.save_file = torn_save
    class Kill(tr.Callback):
        def on_step(self, trainer, logs):
            if mode == "history" and logs["step"] == 5:
                with open(trainer.out / "history.jsonl", "a") as f:
                    f.write('{{"step": 6, "lo')  # a torn row, then the kill
                os.kill(os.getpid(), signal.SIGKILL)
    t = make_trainer({out!r}, load_model("tiny-random-llama"))
    t.callbacks.append(Kill())
    t.fit()
""")


@pytest.mark.parametrize("mode", ["checkpoint", "history"])
def test_kill_mid_write_resumes_bitwise(tmp_path, tiny, finished, mode):
    """A SIGKILL in the middle of writing a checkpoint (its temp file is left half-written) or a history row:
    the resumed run ends bitwise where the straight run ends, with the same history, and the dead writer's
    lock does not block it."""
    out = tmp_path / "killed"
    code = KILL.format(tests=os.path.dirname(__file__), out=str(out), mode=mode)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert holder(out)["pid"] != os.getpid()  # the dead writer's note is still in the lock file
    ckpts = [s for s, _ in list_checkpoints(out)]
    assert ckpts == [0, 3], ckpts  # the torn step-6 file never got its name
    if mode == "checkpoint":
        assert [p.name for p in (out / "checkpoints").iterdir() if ".tmp" in p.name]  # the half-written temp file
    with pytest.raises(FileExistsError, match="--resume"):
        make_trainer(out, tiny)
    make_trainer(out, tiny, resume=True).fit()
    a = load_checkpoint(list_checkpoints(finished)[-1][1])
    b = load_checkpoint(list_checkpoints(out)[-1][1])
    assert a["step"] == b["step"] == 8
    assert torch.equal(a["prompts"]["soft"], b["prompts"]["soft"])
    assert torch.equal(a["optim"]["soft"]["exp_avg_sq"], b["optim"]["soft"]["exp_avg_sq"])
    assert [r["loss"] for r in read_jsonl(out / "history.jsonl")] == [r["loss"] for r in read_jsonl(finished / "history.jsonl")]
