"""Every shell command of the README works as typed on a fresh clone with ``../shared`` beside it (issue 18).

The commands are the lines of the README's ```bash blocks (backslash continuations joined, comments
dropped) and the inline code spans of its prose that start with ``make``, ``priorlib`` or ``papermill``
and an argument, or with ``.venv/bin/`` or ``.ci/``. Each is run in a fresh clone: the repository's files copied into
``tmp/repo`` (mtimes kept), ``tmp/repo/.venv`` linked to the environment running this test,
``tmp/shared`` linked to this checkout's ``../shared``; ``PYTHONPATH`` is the clone, and
``PRIORLIB_DATA`` and the offline flags are unset, as a new user has them: the data is found by the
library's own discovery rule, not by this test or the Makefile. How each kind is run:

- ``.venv/bin/priorlib <command> ...`` (or ``priorlib ...``): as typed, with only the issue's appendix:
  ``--profile smoke`` when the command takes ``--profile`` (``book``, ``sweep``), else
  ``--model tiny-random-llama`` and ``--steps 2`` where it takes them (``train``; ``bench`` has no
  ``--steps``, so it gets the model only); a command that takes ``--shapes`` (``bench-gpu``, which
  measures on a CUDA GPU) runs the same code on the CPU on its toy shape (``--device cpu --shapes tiny``
  and one small round). Which options a command takes is read from its ``--help``.
- ``make test`` and ``make test-fast`` run the whole suite, this test included, so they cannot run
  inside it: ``make -n`` must show the pytest command (CI runs ``make test`` itself, in a clean clone).
- any other ``make <target>``: its recipe, read with ``make -n`` in the clone, each line of which must be
  a ``.venv/bin/priorlib`` command, run by the rule above (``make book`` runs ``priorlib book --profile cpu``,
  so it is run as ``... --profile cpu --profile smoke``).
- ``.ci/install-browser``: as typed when chromium and npm are present (CI installs them before
  ``make test``: a no-op then, exit 0); otherwise only ``bash -n`` (it needs root and apt).

Commands that come to the same thing (``priorlib book --profile paper --profile smoke`` and ``make book``'s
``priorlib book --profile cpu --profile smoke``) run once. A README command of any other kind fails the
test until a rule for it is added here. The runs are ``slow`` (they train, benchmark and build the whole
book in the smoke profile); without data or network the README's SQuAD ``priorlib train`` examples must
fail in under 2 seconds with one line (not slow).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHARED = REPO.parent / "shared"
VENV = Path(sys.prefix)
COMMAND_STARTS = ("make", "priorlib", "papermill")
PATH_STARTS = (".venv/bin/", ".ci/")
APPENDIX_MODEL = ["--model", "tiny-random-llama"]
APPENDIX_STEPS = ["--steps", "2"]
APPENDIX_PROFILE = ["--profile", "smoke"]
APPENDIX_TOY_SHAPE = ["--device", "cpu", "--shapes", "tiny", "--batch-sizes", "2", "--seq-len", "24", "--rounds", "1",
                      "--capture-texts", "32"]
SUITE_TARGETS = ("test", "test-fast")
TIMEOUT_S = 1800
# The variables a new user does not have set (conftest.py sets some of them for the other tests).
UNSET = ("PRIORLIB_DATA", "PRIORLIB_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT",
         "PYTHONPATH", "PRIORLIB_RUNS", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")


# --------------------------------------------------------------------------- extraction
def readme_commands(text: str) -> list[str]:
    """The README's shell commands, in order, each once (see the module docstring)."""
    found: list[str] = []
    fence = re.compile(r"^```(bash|sh|shell|console)[ \t]*\n(.*?)^```", re.M | re.S)
    for block in fence.finditer(text):
        for line in block.group(2).replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append(shlex.join(words))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for span in re.findall(r"`([^`\n]+)`", prose):
        try:
            words = shlex.split(span)
        except ValueError:
            continue
        # a program's bare name (`priorlib`) is a name in the prose, not a command
        if words and ((words[0] in COMMAND_STARTS and len(words) > 1) or words[0].startswith(PATH_STARTS)):
            found.append(shlex.join(words))
    return list(dict.fromkeys(found))


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_extraction_joins_lines_drops_comments_and_reads_the_prose():
    text = ("intro `make test-fast` and `priorlib.train(config)`, `priorlib` and `.ci/run`\n"
            "```bash\nmake test   # note\n.venv/bin/priorlib train --a 1 \\\n    --b 2 --out x\n\n```\n"
            "```python\nimport priorlib\n```\n`make test` again, `$PRIORLIB_DATA`, `priorlib book --profile paper`\n")
    assert readme_commands(text) == ["make test", ".venv/bin/priorlib train --a 1 --b 2 --out x",
                                     "make test-fast", ".ci/run", "priorlib book --profile paper"]


def test_readme_has_the_commands_issue_18_names():
    assert COMMANDS[:2] == ["make test", "make book"]
    assert (".venv/bin/priorlib train --task squad --method soft --prior vocab-sample --lr 1e-2 --steps 150 "
            "--out runs/demo") in COMMANDS
    assert ".venv/bin/priorlib book --profile paper" in COMMANDS
    assert not [c for c in COMMANDS if "..." in c.split()], "a README command has a '...' placeholder"


# --------------------------------------------------------------------------- the fresh clone
def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode()
        return [f for f in out.split("\0") if f and (REPO / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "_build", "runs", "__pycache__", ".pytest_cache", "node_modules", ".cache"}
        return [str(p.relative_to(REPO)) for p in REPO.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(REPO).parts)]


def make_clone(root: Path, *, shared: bool) -> Path:
    """``root/repo``: a copy of the repository, ``.venv`` linked in, ``root/shared`` linked when ``shared``."""
    clone = root / "repo"
    stamp = VENV / ".installed"
    # The borrowed .venv is installed already: keep make from reinstalling it (copies would look newer).
    past = stamp.stat().st_mtime - 1 if stamp.exists() else None
    for name in _tracked_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
        if past is not None:
            os.utime(target, (past, past))
    (clone / ".venv").symlink_to(VENV, target_is_directory=True)
    if shared:
        (root / "shared").symlink_to(SHARED.resolve(), target_is_directory=True)
    return clone


def user_env(clone: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(PYTHONPATH=str(clone), PRIORLIB_RUNS=str(clone.parent / "run-store"), **extra)
    return env


def _need_venv():
    if not (VENV / "bin" / "priorlib").exists():
        pytest.skip(f"{VENV}/bin/priorlib is missing: run the tests with the project's .venv (make test)")


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    _need_venv()
    if not (SHARED / "data" / "squad").is_dir():
        message = f"{SHARED / 'data' / 'squad'} is missing: the README's commands need ../shared beside the clone"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return make_clone(tmp_path_factory.mktemp("readme"), shared=True)


# --------------------------------------------------------------------------- how each command runs
_OPTIONS: dict[str, set[str]] = {}


def _options(clone: Path, command: str) -> set[str]:
    if command not in _OPTIONS:
        res = subprocess.run([".venv/bin/priorlib", command, "--help"], cwd=clone, env=user_env(clone),
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"priorlib {command} --help: {res.stderr.strip()[-500:]}"
        _OPTIONS[command] = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", res.stdout))
    return _OPTIONS[command]


def priorlib_argv(clone: Path, args: list[str]) -> list[str]:
    taken = _options(clone, args[0])
    if "--profile" in taken:
        appendix = APPENDIX_PROFILE
    elif "--shapes" in taken:
        appendix = APPENDIX_TOY_SHAPE
    else:
        appendix = (APPENDIX_MODEL if "--model" in taken else []) + (APPENDIX_STEPS if "--steps" in taken else [])
    return [".venv/bin/priorlib", *args, *appendix]


def make_recipe(clone: Path, target: str) -> list[str]:
    res = subprocess.run(["make", "-n", target], cwd=clone, env=user_env(clone), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, f"make -n {target}: {res.stderr.strip()}"
    return [line for line in res.stdout.splitlines() if line.strip() and not line.startswith("make")]


def plan(clone: Path, command: str) -> list[tuple[str, list[str]]]:
    """``[(kind, argv)]``: what runs for one README command (kinds: run, suite, syntax)."""
    words = shlex.split(command)
    if words[0] in ("priorlib", ".venv/bin/priorlib"):
        return [("run", priorlib_argv(clone, words[1:]))]
    if words[0] == "make":
        assert len(words) == 2, f"{command!r}: one make target expected"
        recipe = make_recipe(clone, words[1])
        if words[1] in SUITE_TARGETS:
            return [("suite", shlex.split(line)) for line in recipe]
        steps = []
        for line in recipe:
            argv = shlex.split(line)
            assert argv[0] == ".venv/bin/priorlib", f"{command!r}: no rule for its recipe line {line!r}"
            steps.append(("run", priorlib_argv(clone, argv[1:])))
        return steps
    if words == [".ci/install-browser"]:
        present = Path("/usr/bin/chromium").exists() and shutil.which("npm")
        return [("run", words)] if present else [("syntax", ["bash", "-n", words[0]])]
    raise AssertionError(f"no rule in tests/test_readme.py for the README command {command!r}")


def effective(argv: list[str]) -> tuple[str, ...]:
    """The command as argparse sees it: of a repeated --profile/--model/--steps only the last counts."""
    last, rest, i = {}, [], 0
    while i < len(argv):
        if argv[i] in ("--profile", "--model", "--steps") and i + 1 < len(argv):
            last[argv[i]] = argv[i + 1]
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    return tuple(rest) + tuple(x for item in sorted(last.items()) for x in item)


_RESULTS: dict[tuple, tuple[subprocess.CompletedProcess, float]] = {}


def run_once(clone: Path, argv: list[str]):
    key = effective(argv)
    if key not in _RESULTS:
        t0 = time.time()
        res = subprocess.run(argv, cwd=clone, env=user_env(clone), capture_output=True, text=True, timeout=TIMEOUT_S)
        _RESULTS[key] = (res, t0)
    return _RESULTS[key]


def _option(argv: list[str], name: str, default=None):
    return argv[len(argv) - 1 - argv[::-1].index(name) + 1] if name in argv else default


def check_result(clone: Path, argv: list[str], res: subprocess.CompletedProcess, started: float) -> None:
    shown = shlex.join(argv)
    assert res.returncode == 0, f"{shown} exited {res.returncode}:\n{(res.stdout + res.stderr)[-3000:]}"
    if argv[0] != ".venv/bin/priorlib":
        return
    command = argv[1]
    if command == "train":
        out = clone / _option(argv, "--out")
        summary = json.loads(res.stdout[res.stdout.index("{\n"):])
        assert summary["out"] == _option(argv, "--out")
        assert summary["median_s_per_step"] > 0
        identity = json.loads((out / "config.json").read_text())["identity"]
        assert (identity["model"], identity["steps"]) == ("tiny-random-llama", 2)
        assert identity["task"] == _option(argv, "--task", "squad")
        final = json.loads((out / "metrics.json").read_text())["final"]
        assert summary["final"] and summary["final"] == {k: final[k] for k in summary["final"]}
    elif command == "book":
        index = clone / "_build" / "html" / "index.html"
        assert index.is_file() and "book: _build/html/index.html (" in res.stdout, res.stdout[-2000:]
        n = len(list((clone / "notebooks").glob("[0-9][0-9]_*.ipynb")))
        executing = f"executing {n} notebook(s) with profile=smoke" in res.stdout
        assert executing == ("--no-execute" not in argv), res.stdout[-2000:]
    elif command == "evidence" and argv[2] == "costs":
        assert "## What the evidence costs" in res.stdout and "CPU-hours** on the machine measured (" in res.stdout, res.stdout
    elif command == "evidence":
        assert "bank: " in res.stdout and "MB of 60 MB" in res.stdout, res.stdout
    elif command == "bench-gpu" and "--from" in argv:  # the results of the --out run before it, on the page
        src = json.loads((clone / _option(argv, "--from")).read_text())
        assert json.loads((clone / "benchmarks" / "gpu.json").read_text()) == src
        assert (clone / "book" / "performance.md").stat().st_mtime >= started
        assert "## On a GPU, random weights of the models' shapes" in (clone / "book" / "performance.md").read_text()
    elif command == "bench-gpu":
        g = json.loads((clone / _option(argv, "--out")).read_text())
        assert g["errors"] == [] and [r["shape"] for r in g["train"]] == ["tiny"], g["errors"]
    elif command == "bench":
        results = json.loads((clone / "benchmarks" / "results.json").read_text())
        assert {"environment", "train"} <= set(results)
        assert (clone / "book" / "performance.md").stat().st_mtime >= started


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=COMMANDS)
def test_readme_command_runs(clone, command):
    steps = plan(clone, command)
    assert steps, f"{command!r} has nothing to run"
    for kind, argv in steps:
        if kind == "suite":  # the suite this test belongs to: it cannot run inside itself
            assert argv[:3] == [".venv/bin/python", "-m", "pytest"], f"make target {command!r} runs {argv}"
            continue
        if kind == "syntax":
            res = subprocess.run(argv, cwd=clone, capture_output=True, text=True, timeout=60)
            assert res.returncode == 0, res.stderr
            assert os.access(clone / argv[-1], os.X_OK)
            continue
        res, started = run_once(clone, argv)
        check_result(clone, argv, res, started)


# --------------------------------------------------------------------------- no data, no network
def _squad_train_commands() -> list[str]:
    out = []
    for command in COMMANDS:
        words = shlex.split(command)
        if words[:2] in (["priorlib", "train"], [".venv/bin/priorlib", "train"]) and \
                _option(words, "--task", "squad") == "squad":
            out.append(command)
    return out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("network", ["refused", "HF_HUB_OFFLINE"])
def test_readme_squad_training_fails_fast_without_data_or_network(tmp_path, network):
    """No ../shared beside the clone, no PRIORLIB_DATA, no hub: one line on stderr within 2 seconds."""
    _need_venv()
    tmp_path = tmp_path.resolve()
    clone = make_clone(tmp_path, shared=False)
    # "No network", made certain on any machine: the hub's address refuses, or offline mode is set.
    extra = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"} if network == "refused" else {"HF_HUB_OFFLINE": "1"}
    commands = _squad_train_commands()
    assert len(commands) >= 2
    for command in commands:
        argv = [".venv/bin/priorlib", *shlex.split(command)[1:], *APPENDIX_MODEL, *APPENDIX_STEPS]
        t0 = time.perf_counter()
        res = subprocess.run(argv, cwd=clone, env=user_env(clone, **extra), capture_output=True, text=True,
                             timeout=60)
        elapsed = time.perf_counter() - t0
        assert res.returncode == 2, res.stderr
        assert res.stdout == ""
        lines = res.stderr.splitlines()
        assert len(lines) == 1, res.stderr
        assert lines[0].startswith("priorlib train: error: no SQuAD data: $PRIORLIB_DATA is unset and there is "
                                   f"no ../shared/data beside the repository (looked for {tmp_path / 'shared' / 'data'})")
        reason = "127.0.0.1" if network == "refused" else "offline mode is set (HF_HUB_OFFLINE)"
        assert f"the hub cannot be used ({reason}" in lines[0]
        assert elapsed < 2.0, f"{command}: {elapsed:.2f} s"
        assert not (clone / "runs").exists()
