"""The package's shape: the front door, the library apart from the compendium, and no import cycle.

Imports are read from the source (every ``import``/``from`` statement, including those inside functions),
so a cycle that only holds because one import is deferred is still found.
"""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "priorlib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """priorlib modules that ``name`` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {n: _imports(n, p, set(mods)) for n, p in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for root in sorted(graph):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_find_cycle_known_answers():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": set(), "b": {"b2"}, "b2": {"b"}}) == ["b", "b2", "b"]


def test_graph_sees_deferred_imports():
    g = import_graph()
    # config.py imports priorlib.tasks inside __post_init__ only
    assert "priorlib.tasks" in g["priorlib.config"]
    assert "priorlib.hooks" in g["priorlib.prompts.lm"]


def test_no_import_cycle_in_the_library():
    g = import_graph()
    # a package's __init__ importing its own submodules is how registries fill; a cycle counts only
    # when it leaves the package, so intra-package edges into a package's __init__ are left out
    lib = {n: {t for t in deps if not (t != "priorlib" and n.startswith(t + "."))}
           for n, deps in g.items()}
    cycle = find_cycle(lib)
    assert cycle is None, " -> ".join(cycle)


def test_library_never_imports_the_compendium():
    g = import_graph()
    bad = sorted((n, t) for n, deps in g.items() if not n.startswith("priorlib.compendium")
                 for t in deps if t.startswith("priorlib.compendium"))
    assert not bad, bad


def test_front_door():
    import priorlib
    for name in ("TrainConfig", "train", "Run", "load_model", "register_model", "ModelSpec", "Trace",
                 "capture", "PromptedLM", "sample_prior", "Reference", "Example", "TaskSpec", "register_task"):
        assert name in priorlib.__all__
        assert getattr(priorlib, name) is not None
    assert priorlib.train.__module__ == "priorlib.runstore"
    with pytest.raises(AttributeError):
        priorlib.no_such_name


def test_import_priorlib_is_cheap():
    # the front door imports torch only when a name is used
    code = "import sys, priorlib; assert 'torch' not in sys.modules, 'torch imported'; priorlib.train; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("args, says", [
    (["--task", "squad"], "squad does not exist"),                 # no data where PRIORLIB_DATA points
    (["--task", "math", "--model", "gpt-17"], "unknown model"),
    (["--task", "math", "--device", "gpu"], "device must be"),
    (["--task", "math", "--task", "chess"], "task must be one of"),
    (["--task", "math", "--lr", "-1"], "lr must be positive"),
    (["--task", "math", "--schedule", "cosine"], "schedule must be one of"),
    (["--task", "math", "--prior", "nope"], "unknown prior"),
])
def test_cli_refuses_bad_input_before_importing_torch(tmp_path, args, says):
    """A refused ``priorlib train`` must not pay torch's ~1.5 s import first.

    Issue 18 asks for such failures in under 2 seconds; importing torch alone took 1.4-2.0 s on a loaded
    2-core machine (CI once measured 2.09 s), so the check is on what was imported, not on a clock.
    """
    code = (
        "import sys\n"
        "from priorlib.compendium.cli import main\n"
        f"code = main(['train', '--prior', 'vocab-sample', '--steps', '2', *{args!r},\n"
        f"             '--out', {str(tmp_path / 'run')!r}])\n"
        "print('exit', code)\n"
        "print('torch' in sys.modules)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "PRIORLIB_DATA"}
    env.update(HF_HUB_OFFLINE="1", PRIORLIB_DATA=str(tmp_path / "no-data"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    assert out.stdout.split() == ["exit", "2", "False"], (out.stdout, out.stderr)
    assert says in out.stderr, out.stderr


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_module_imports_alone(name):
    importlib.import_module(name)
