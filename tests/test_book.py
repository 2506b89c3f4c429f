"""The book runner: papermill execution, tags, run manifest, failure handling, sweeps, build."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from fixture_book import FIXTURES, make_book  # noqa: E402

from priorlib.compendium import book, cli, manifest, sweep  # noqa: E402

FIXTURE = FIXTURES / "01_fixture.ipynb"
FAILING = FIXTURES / "failing.ipynb"


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The fixture notebook executed once by the runner (smoke profile, one -p override)."""
    root = make_book(tmp_path_factory.mktemp("book"), {"01_fixture.ipynb": FIXTURE})
    params = book.parameters_from_args("smoke", [("n_frames", "4")])
    lines = []
    manifests = book.execute_all(
        book.find_notebooks(root / "notebooks"), root / "book", params, root=root,
        log=lambda *a, **k: lines.append(" ".join(map(str, a))),
    )
    return root, manifests, lines


def test_parameters_are_parsed_as_yaml():
    params = book.parameters_from_args(
        "cpu", [("lr", "1e-3"), ("seeds", "[0, 1e-3]"), ("name", "abc"), ("flag", "true")]
    )
    assert params == {"profile": "cpu", "lr": 1e-3, "seeds": [0, 0.001], "name": "abc", "flag": True}
    with pytest.raises(ValueError, match="identifier"):
        book.parameters_from_args(None, [("not-a-name", "1")])


def test_find_notebooks_only(tmp_path):
    for name in ("01_a.ipynb", "02_b_c.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in book.find_notebooks(tmp_path)] == ["01_a.ipynb", "02_b_c.ipynb"]
    assert [p.name for p in book.find_notebooks(tmp_path, ["02"])] == ["02_b_c.ipynb"]
    assert [p.name for p in book.find_notebooks(tmp_path, ["b_c", "01_a"])] == ["01_a.ipynb", "02_b_c.ipynb"]
    with pytest.raises(ValueError, match="no such notebook"):
        book.find_notebooks(tmp_path, ["03"])


def test_execute_tags_and_manifest(executed):
    root, manifests, lines = executed
    out = root / "book" / "01_fixture.ipynb"
    assert out.is_file()
    assert any("01_fixture" in line and " s" in line for line in lines)  # progress line
    assert not list((root / "book").glob(".*partial*"))  # no temporary file left behind
    nb = nbformat.read(out, as_version=4)

    injected = [c for c in nb.cells if "injected-parameters" in _tags(c)]
    assert len(injected) == 1 and "hide-input" in _tags(injected[0])
    assert "n_frames = 4" in injected[0].source
    source_params = [c for c in nb.cells if "parameters" in _tags(c)]
    assert source_params and all("remove-cell" in _tags(c) for c in source_params)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(set(_tags(c)) & {"hide-input", "remove-cell"} for c in code)  # code folds

    m = nb.metadata["priorlib"]["run_manifest"]
    assert m == manifests[0]
    assert m["parameters"] == {"profile": "smoke", "n_frames": 4} and m["profile"] == "smoke"
    assert m["notebook"] == "notebooks/01_fixture.ipynb" and m["wall_time_s"] > 0
    assert {"torch", "transformers", "priorlib", "papermill"} <= set(m["packages"])
    assert m["hardware"]["cores"] >= 1 and m["hardware"]["cpu"]
    assert "commit" in m["git"]
    footer = nb.cells[-1]
    assert footer.cell_type == "markdown" and manifest.FOOTER_TAG in _tags(footer)
    assert "Run manifest" in footer.source and "n_frames=4" in footer.source
    # papermill's paths are recorded relative to the repository, not the temporary file
    assert nb.metadata["papermill"]["output_path"] == "book/01_fixture.ipynb"
    # nbclient saved the scrubber's widget state, so it renders in the static page
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    names = {s["model_name"] for s in state.values()}
    assert {"StackModel", "IntSliderModel", "PlayModel", "LinkModel", "ImageModel"} <= names


def test_manifest_footer_replaced_not_duplicated(executed):
    root, manifests, _ = executed
    nb = nbformat.read(root / "book" / "01_fixture.ipynb", as_version=4)
    manifest.attach(nb, manifests[0])
    assert sum(manifest.FOOTER_TAG in _tags(c) for c in nb.cells) == 1


def test_failing_notebook_keeps_previous_copy(tmp_path, capsys):
    root = make_book(tmp_path, {"01_fixture.ipynb": FAILING})
    previous = root / "book" / "01_fixture.ipynb"
    previous.write_text('{"sentinel": "previous executed copy"}')
    before = previous.read_bytes()

    with pytest.raises(book.NotebookError) as info:
        book.execute_all(book.find_notebooks(root / "notebooks"), root / "book",
                         {"profile": "smoke"}, root=root, log=lambda *a, **k: None)
    message = str(info.value)
    assert "01_fixture.ipynb" in message
    assert "RuntimeError: fixture failure in profile smoke" in message
    assert "\n" not in message
    assert previous.read_bytes() == before
    assert not list((root / "book").glob(".*partial*"))
    assert (root / "_build" / "failed" / "01_fixture.ipynb").is_file()

    # through the CLI: exit status 2 and one line on stderr, no traceback
    capsys.readouterr()
    rc = cli.main(["book", "--root", str(root), "--profile", "smoke", "--no-build"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "01_fixture.ipynb" in err[0] and "RuntimeError" in err[0]
    assert previous.read_bytes() == before


def test_no_execute_build_without_notebooks(tmp_path):
    """Empty toc globs (no executed notebook, no sweep yet) still give a green build."""
    root = make_book(tmp_path)
    args = argparse.Namespace(root=str(root), no_execute=True, no_build=False, clean=False,
                              profile="cpu", parameters=[], only=None)
    assert book.run(args) == 0
    html = root / "_build" / "html"
    assert (html / "index.html").is_file()
    for page in ("intro", "methods", "claims", "reproduce", "performance"):
        assert (html / "book" / f"{page}.html").is_file()
    vendor = html / "_static" / "vendor"
    for f in ("require.js", "html-manager/embed-amd.js", "mathjax/tex-chtml.js"):
        assert (vendor / f).is_file()
    text = (html / "book" / "methods.html").read_text()
    assert "_static/vendor/mathjax/tex-chtml.js" in text
    assert "cdn.jsdelivr" not in text and "unpkg.com" not in text and "cdnjs" not in text


def test_sweep_grid_and_index(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("n_frames: [2, 3]\nlabel: x\n")
    grid = sweep.load_grid(grid_file)
    assert sweep.grid_points(grid) == [{"n_frames": 2, "label": "x"}, {"n_frames": 3, "label": "x"}]
    assert sweep.slug({"lr": 0.001, "priors": ["a b", "c"]}) == "lr-0.001_priors-a-b+c"
    assert len(set(sweep.point_slugs([{"a": "a b"}, {"a": "a-b"}]))) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        sweep.load_grid(bad)

    root = make_book(tmp_path / "root", {"01_fixture.ipynb": FIXTURE})
    ms = sweep.run_sweep(root / "notebooks" / "01_fixture.ipynb", {"n_frames": [2, 3]}, root=root,
                         base_parameters={"profile": "smoke"}, log=lambda *a, **k: None)
    assert [m["parameters"]["n_frames"] for m in ms] == [2, 3]
    out = root / "book" / "sweeps" / "01_fixture"
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["n_frames-2.ipynb", "n_frames-3.ipynb"]
    nb = nbformat.read(out / "n_frames-3.ipynb", as_version=4)
    assert nb.metadata["priorlib"]["sweep_point"] == {"n_frames": 3}
    assert nb.cells[0].source.startswith("# Fixture chapter (n_frames=3)")
    index = (root / "book" / "sweeps" / "01_fixture.md").read_text()
    assert "[n_frames-2](01_fixture/n_frames-2.ipynb)" in index
    assert "| point | n_frames | profile |" in index


def test_toc_globs_cover_notebooks_and_sweeps():
    import yaml

    from fixture_book import REPO

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    globs = [c["glob"] for part in toc["parts"] for c in part["chapters"] if "glob" in c]
    assert "book/[0-9][0-9]_*" in globs and "book/sweeps/**" in globs
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert list(config["sphinx"]["config"]["nb_ipywidgets_js"]) == [
        "vendor/require.js", "priorlib-widgets.js", "vendor/html-manager/embed-amd.js"]
    assert json.dumps(config).count("http") == 0  # no CDN anywhere in the configuration


def test_killed_runs_leave_no_partial_notebook(tmp_path):
    """A SIGKILLed `priorlib book` leaves `.NN_name.<pid>.*.partial.ipynb`; the next run removes it,
    but never the file of an execution that is still running."""
    import os
    import subprocess
    import sys

    from priorlib.compendium.book import remove_stale_partials

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".02_lr_priors.{dead}.abc123.partial.ipynb"
    legacy = tmp_path / ".03_exclusion.x7y8.partial.ipynb"   # the old name, without a pid
    running = tmp_path / f".04_activation_spaces.{os.getpid()}.def456.partial.ipynb"
    page = tmp_path / "02_lr_priors.ipynb"
    for f in (stale, legacy, running, page):
        f.write_text("{}")
    assert sorted(remove_stale_partials(tmp_path)) == sorted([stale, legacy])
    assert running.exists() and page.exists() and not stale.exists() and not legacy.exists()


def test_kernel_start_prints_no_tcp_warning(tmp_path):
    """ipykernel 7 warns "running over TCP without encryption" at every start; `priorlib book`'s kernel
    keeps its own log to errors, so the terminal stays clean (issue: no leftover output)."""
    import subprocess
    import sys

    code = f"""
import nbformat, papermill as pm
from priorlib.compendium.book import ensure_kernel
nb = nbformat.v4.new_notebook(); nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
nbformat.write(nb, {str(tmp_path / 'in.ipynb')!r})
pm.execute_notebook({str(tmp_path / 'in.ipynb')!r}, {str(tmp_path / 'out.ipynb')!r}, kernel_name=ensure_kernel(),
                    progress_bar=False)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-1500:]
    assert "without encryption" not in out.stderr + out.stdout
    import nbformat
    assert nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[0].outputs[0]["text"].strip() == "42"


def test_manifest_dirty_flag_ignores_the_books_own_outputs(tmp_path):
    """A build rewrites book/NN_*.ipynb and book/claims.md chapter by chapter; those are outputs, so a chapter
    executed after another one's copy was rewritten still records a clean tree. A changed source does not."""
    import subprocess

    from priorlib.compendium.manifest import git_commit

    def git(*a):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t", *a],
                       check=True, capture_output=True)
    (tmp_path / "book").mkdir()
    for name, text in (("book/01_x.ipynb", "{}"), ("book/claims.md", "#"), ("book/key_findings.md", "#"),
                       ("book/intro.md", "#"), ("src.py", "")):
        (tmp_path / name).write_text(text)
    git("init", "-q"); git("add", "-A"); git("commit", "-qm", "init")
    (tmp_path / "book/01_x.ipynb").write_text('{"executed": 1}')
    (tmp_path / "book/claims.md").write_text("# regenerated")
    (tmp_path / "book/key_findings.md").write_text("# regenerated")
    assert git_commit(tmp_path)["dirty"] is False
    (tmp_path / "book/intro.md").write_text("# edited prose")   # prose is a source
    assert git_commit(tmp_path)["dirty"] is True


class _Terminal:
    """A stderr that says it is a terminal, and keeps what is written to it."""

    def __init__(self):
        import io
        self.buffer = io.StringIO()

    def write(self, text):
        return self.buffer.write(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_shows_cells_done_and_elapsed_time_in_the_terminal_only(tmp_path, monkeypatch):
    """While a notebook runs, papermill's bar on stderr shows `cell n/N` and the elapsed time, and the clock
    keeps moving during one long cell; the executed notebook holds none of it."""
    import re

    src = tmp_path / "notebooks" / "01_tiny.ipynb"
    src.parent.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"), nbformat.v4.new_code_cell("import time\ntime.sleep(2.6)"),
                nbformat.v4.new_code_cell("print('done')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(book, "PROGRESS_REFRESH_S", 0.2)
    book.execute_notebook(src, tmp_path / "book" / "01_tiny.ipynb", {"profile": "smoke"}, root=tmp_path,
                          log=lambda *a, **k: None)
    frames = [re.search(r"01_tiny: cell (\d+)/(\d+) \|.*\| (\d\d:\d\d)", f) for f in re.split(r"[\r\n]", terminal.buffer.getvalue())]
    frames = [(int(m[1]), int(m[2]), m[3]) for m in frames if m]
    assert frames and {total for _, total, _ in frames} == {4}  # 3 cells + papermill's injected parameters
    assert (4, 4) in {(n, total) for n, total, _ in frames}
    during_sleep = {t for n, _, t in frames if n == 2}  # markdown and parameters done, the sleep running
    assert {"00:01", "00:02"} <= during_sleep, frames
    executed = (tmp_path / "book" / "01_tiny.ipynb").read_text()
    assert "01_tiny: cell" not in executed and "done" in executed

    # and off when asked
    terminal.buffer = __import__("io").StringIO()
    book.execute_notebook(src, tmp_path / "book" / "01_tiny.ipynb", {"profile": "smoke"}, root=tmp_path,
                          log=lambda *a, **k: None, progress=False)
    assert "cell" not in terminal.buffer.getvalue()


def test_no_progress_bar_off_a_terminal():
    import io
    assert book.progress_bar("02_lr_priors", io.StringIO()) is False  # a log file keeps one line per notebook
    terminal = _Terminal()
    bar = book.progress_bar("02_lr_priors", terminal)
    assert bar["file"] is terminal and bar["desc"] == "  02_lr_priors" and bar["leave"] is False
    assert "{n_fmt}/{total_fmt}" in bar["bar_format"] and "{elapsed}" in bar["bar_format"]
