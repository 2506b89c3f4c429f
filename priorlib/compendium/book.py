"""``priorlib book``: execute the notebooks with papermill, then build the jupyter-book.

Steps (each can be used on its own from Python, the tests do):

1. ``execute_notebook``: ``notebooks/NN_*.ipynb`` -> ``book/NN_*.ipynb`` with papermill (parameters:
   ``profile`` plus ``-p`` overrides), into a temporary file that replaces the executed copy only on
   success. While it runs, papermill's progress bar (a tqdm over cells, :func:`progress_bar`) shows cells
   done out of cells and the elapsed time on stderr when that is a terminal; nothing of it reaches the
   notebook. A failing notebook raises :class:`NotebookError` naming the notebook and the failing cell's
   error; the previous executed copy is left untouched and the failed output is kept under
   ``_build/failed/`` for inspection.
2. ``finalise``: tags papermill's injected-parameters cell ``hide-input`` (papermill cannot), the source
   ``parameters`` cell ``remove-cell``, and records the run manifest (see :mod:`priorlib.compendium.manifest`)
   in the metadata and as a footer cell.
3. ``ensure_assets``: ``npm ci`` (first use) and copy of the offline JavaScript (require.js, the
   ipywidgets HTML manager, MathJax) from ``node_modules`` into ``book/_static/vendor/``.
4. ``build_book``: writes ``book/build.md`` (each chapter's commit, tree, profile and date, see
   :mod:`priorlib.compendium.provenance`), then ``jupyter-book build <root>`` into ``<root>/_build/html``.

The kernel starts with :data:`KERNEL_ENV` in its environment (tqdm and Hugging Face progress bars off: a
bar is a widget that stays frozen in the static book; a figure shown without a caption is an error), and its
own log kept to errors (:data:`KERNEL_LOG_FLAG`).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from priorlib.compendium import manifest as _manifest
from priorlib.compendium.assets import ensure_assets
from priorlib.compendium.paths import portable, repo_root

PROFILES = ("smoke", "cpu", "converged", "paper")
NOTEBOOK_RE = re.compile(r"^\d\d_.+\.ipynb$")
KERNEL_NAME = "python3"


_VISIBILITY_TAGS = {"hide-input", "show-input", "remove-input", "remove-cell", "hide-cell",
                    "hide-output", "remove-output"}


class NotebookError(ValueError):
    """A notebook failed; the message names it and the failing cell's error (one line)."""


# ----------------------------------------------------------------------------------------- kernel
# The kernel talks to papermill over loopback TCP; ipykernel 7 warns about that on every start ("running
# over TCP without encryption"), which would land in the terminal of every `priorlib book`. The kernel's own
# log is therefore kept to errors; warnings raised by the notebooks' code are not affected.
KERNEL_LOG_FLAG = "--IPKernelApp.log_level=ERROR"
# What the kernel inherits on top of the runner's environment: no progress bars in the notebooks (tqdm reads
# TQDM_DISABLE, huggingface_hub its own switch); papermill's own bar in the runner is enabled explicitly.
# PRIORLIB_REQUIRE_CAPTIONS: a figure the book shows without a caption is an error (priorlib.compendium.figures)
KERNEL_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "PRIORLIB_REQUIRE_CAPTIONS": "1"}

# Run by the kernel before the first cell (an IPython startup file in a private IPYTHONDIR): tqdm's notebook
# bar ignores TQDM_DISABLE (it passes disable=False itself), so it is switched off here; transformers' bars
# (tqdm.auto) go with it. A bar is an ipywidget that would stay frozen in the static book. Nothing heavier
# than tqdm is imported, so the kernel starts as fast as before.
KERNEL_STARTUP = """\
def _priorlib_quiet_kernel():
    import os
    if os.environ.get("TQDM_DISABLE") != "1":
        return
    try:
        import tqdm.notebook as notebook
    except Exception:
        return
    for cls in {notebook.tqdm_notebook, notebook.tqdm}:
        original = cls.__init__

        def __init__(self, *args, _original=original, **kwargs):
            kwargs["disable"] = True
            _original(self, *args, **kwargs)

        cls.__init__ = __init__


_priorlib_quiet_kernel()
del _priorlib_quiet_kernel
"""


@contextlib.contextmanager
def kernel_environment(env: dict[str, str] | None = None):
    """``os.environ`` with ``env`` (default :data:`KERNEL_ENV`) and a private ``IPYTHONDIR`` holding
    :data:`KERNEL_STARTUP` while a kernel runs; all restored afterwards."""
    env = dict(KERNEL_ENV if env is None else env)
    with tempfile.TemporaryDirectory(prefix="priorlib-ipython-") as ipython_dir:
        startup = Path(ipython_dir) / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-priorlib-quiet.py").write_text(KERNEL_STARTUP)
        env["IPYTHONDIR"] = ipython_dir
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def ensure_kernel(name: str = KERNEL_NAME) -> str:
    """A kernelspec ``name`` in this interpreter's prefix that starts *this* interpreter (its kernel log
    kept to errors, see :data:`KERNEL_LOG_FLAG`).

    Installed once with ipykernel (like ``ipykernel install --sys-prefix``); papermill then runs
    every notebook in the same environment as the runner, whatever else is on the machine.
    """
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / name / "kernel.json"

    def current() -> dict | None:
        try:
            d = json.loads(spec.read_text())
            return d if d["argv"][0] == sys.executable else None
        except (OSError, ValueError, KeyError, IndexError):
            return None

    d = current()
    if d is None:
        try:
            from ipykernel.kernelspec import install

            install(kernel_name=name, prefix=sys.prefix)
        except Exception as err:  # read-only prefix: jupyter_client maps "python" to sys.executable anyway
            print(f"priorlib book: could not install kernelspec {name!r} in {sys.prefix}: {err}",
                  file=sys.stderr)
            return name
        d = current()
    if d is not None and KERNEL_LOG_FLAG not in d["argv"]:
        d["argv"].append(KERNEL_LOG_FLAG)
        try:
            from priorlib.checkpoint import atomic_write_text
            atomic_write_text(spec, json.dumps(d, indent=1))
        except OSError as err:
            print(f"priorlib book: could not update {spec}: {err}", file=sys.stderr)
    return name


# ------------------------------------------------------------------------------------- parameters
def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML 1.1 reads ``1e-3`` (no dot) as a string; here it is a float, as meant."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
        list("-+0123456789."),
    )
    return Loader


def parse_value(text: str):
    """``-p`` values: YAML scalars/lists (``3``, ``1e-3``, ``true``, ``[a, b]``), else the string."""
    import yaml

    try:
        value = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass
    except yaml.YAMLError:
        return text
    return text if value is None and text.strip() not in ("null", "~") else value


def parameters_from_args(profile: str | None, pairs) -> dict:
    params = {}
    if profile:
        params["profile"] = profile
    for key, value in pairs or []:
        if not key.isidentifier():
            raise ValueError(f"-p {key}: a parameter name must be a Python identifier")
        params[key] = parse_value(value)
    return params


def find_notebooks(notebooks_dir: Path, only=None) -> list[Path]:
    found = sorted(p for p in Path(notebooks_dir).glob("*.ipynb") if NOTEBOOK_RE.match(p.name))
    if not only:
        return found
    chosen = []
    for name in only:
        stem = Path(name).name.removesuffix(".ipynb")
        matches = [p for p in found
                   if stem in (p.stem, p.stem[:2], p.stem[3:])]
        if not matches:
            names = ", ".join(p.stem for p in found) or "none"
            raise ValueError(f"--only {name}: no such notebook in {notebooks_dir} (have: {names})")
        chosen += [p for p in matches if p not in chosen]
    return sorted(chosen)


# -------------------------------------------------------------------------------------- execution
def _first_line(text) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text or "")).strip()
    return text.splitlines()[0] if text else ""


def _describe_failure(err: BaseException) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        where = f"cell {err.cell_index}" + (f" [{err.exec_count}]" if err.exec_count else "")
        code = _first_line(err.source)
        code = f" (`{code[:80]}`)" if code else ""
        return f"{where}{code} raised {err.ename}: {_first_line(err.evalue)}"
    return f"{type(err).__name__}: {_first_line(err)}"


def finalise(nb, manifest: dict | None = None, *, root: Path | None = None,
             src: Path | None = None, dest: Path | None = None) -> None:
    """Hide the parameter cells, fix papermill's paths, attach the run manifest."""
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        # code folds (papermill's injected-parameters cell included), outputs stay; a cell
        # tagged show-input, or already hidden/removed some other way, is left alone
        if cell.get("cell_type") == "code" and not (set(tags) & _VISIBILITY_TAGS):
            tags.append("hide-input")
        if not tags:
            del cell["metadata"]["tags"]
    pm = nb.metadata.get("papermill")
    if pm is not None:  # the temporary file name is meaningless: record repo-relative paths
        if src is not None:
            pm["input_path"] = portable(src, root)
        if dest is not None:
            pm["output_path"] = portable(dest, root)
    if manifest is not None:
        _manifest.attach(nb, manifest)


def attach_results(nb, path: Path, since: float) -> None:
    """Keep the notebook's ``results.json`` (written by this execution) in its metadata, so the
    claims page can be rebuilt from the committed executed notebooks alone."""
    if path.exists() and path.stat().st_mtime >= since:
        nb.metadata.setdefault("priorlib", {})["results"] = json.loads(path.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the half-written ``.NN_name.<pid>.*.partial.ipynb`` files of runs that were killed (their
    process is gone); a running execution's own file stays. Returns what was removed."""
    removed = []
    for f in Path(folder).glob(".*.partial.ipynb"):
        parts = f.name.split(".")
        pid = int(parts[2]) if len(parts) > 4 and parts[2].isdigit() else None
        if pid is None or not _alive(pid):
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


# ------------------------------------------------------------------------------------- progress
PROGRESS_REFRESH_S = 1.0  # the bar is redrawn this often, so its clock runs during a long cell


def progress_bar(label: str, stream=None) -> dict | bool:
    """papermill's ``progress_bar`` argument: its tqdm over cells, labelled and showing cells done out of
    cells and the elapsed time (``  02_lr_priors: cell 7/19 |#####     | 01:23``) on ``stream`` (stderr),
    cleared when the notebook ends. ``False`` when ``stream`` is not a terminal: a log file or CI output
    keeps its one line per notebook, and a failure its one line of error."""
    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        return False
    return dict(desc=f"  {label}", file=stream, leave=False, dynamic_ncols=True, disable=False,
                bar_format="{desc}: cell {n_fmt}/{total_fmt} |{bar:20}| {elapsed}")


class _Heartbeat:
    """Redraw papermill's bar (found by its label among tqdm's live bars) every ``every`` seconds, so the
    elapsed time moves while one long cell runs; tqdm itself redraws only when a cell completes."""

    def __init__(self, desc: str, every: float):
        import threading
        self.desc, self.every, self.stop = desc, every, threading.Event()
        self.thread = threading.Thread(target=self._run, name="priorlib-progress", daemon=True)

    def _run(self):
        from tqdm import tqdm
        while not self.stop.wait(self.every):
            for bar in list(getattr(tqdm, "_instances", ())):
                if getattr(bar, "desc", None) == self.desc and not getattr(bar, "disable", True):
                    bar.refresh()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def execute_notebook(src, dest, parameters: dict | None = None, *, root=None,
                     kernel_name: str | None = None, cwd=None, log=print,
                     transform=None, failed_dir=None, progress: bool = True) -> dict:
    """Execute ``src`` into ``dest`` with papermill; replace ``dest`` only on success.

    Returns the run manifest. Raises :class:`NotebookError` (a ``ValueError``) on failure.
    ``transform(nb)`` may edit the executed notebook before it is written (sweeps retitle it).
    ``progress``: papermill's progress bar on stderr if it is a terminal (:func:`progress_bar`), never in
    the notebook.
    """
    import nbformat
    import papermill as pm

    src, dest = Path(src), Path(dest)
    if not src.is_file():
        raise FileNotFoundError(f"notebook not found: {src}")
    root = Path(root) if root else src.parent
    parameters = dict(parameters or {})
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(dest.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.{os.getpid()}.", suffix=".partial.ipynb", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    try:
        os.environ["PRIORLIB_CHAPTER"] = src.stem  # the kernel inherits it: the evidence plan's name
        bar = progress_bar(src.stem) if progress else False
        heartbeat = _Heartbeat(bar["desc"], PROGRESS_REFRESH_S) if bar else contextlib.nullcontext()
        try:
            with heartbeat, kernel_environment():
                pm.execute_notebook(
                    str(src), str(tmp), parameters=parameters,
                    kernel_name=kernel_name or ensure_kernel(),
                    cwd=str(cwd or src.parent), progress_bar=bar, log_output=False,
                )
        except Exception as err:
            seconds = time.perf_counter() - t0
            kept = ""
            if failed_dir is not None and tmp.exists() and tmp.stat().st_size:
                failed = Path(failed_dir) / dest.name
                failed.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(tmp), failed)
                kept = f"; its partial output is in {portable(failed, root)}"
            log(f"  {src.stem}: FAILED after {seconds:.1f} s")
            raise NotebookError(
                f"notebook {src.name} failed: {_describe_failure(err)}"
                f" ({portable(dest, root)} left as it was{kept})"
            ) from err
        seconds = time.perf_counter() - t0
        nb = nbformat.read(tmp, as_version=4)
        manifest = _manifest.build_manifest(
            notebook=portable(src, root), parameters=parameters, profile=parameters.get("profile"),
            repo=root, wall_time_s=seconds, started=started,
        )
        finalise(nb, manifest, root=root, src=src, dest=dest)
        out_dir = parameters.get("out_dir")  # the notebook's results folder (relative: to the kernel's cwd)
        results = (Path(cwd or src.parent) / str(out_dir) if out_dir else root / "_build" / "results" / src.stem)
        attach_results(nb, results / "results.json", since=started.timestamp())
        if transform is not None:
            transform(nb)
        nbformat.write(nb, tmp)
        os.chmod(tmp, 0o644)  # mkstemp made it private; the executed copy is a page of the book
        os.replace(tmp, dest)
        return manifest
    finally:
        if tmp.exists():
            tmp.unlink()


def execute_all(notebooks, book_dir, parameters, *, root, log=print, progress: bool = True) -> list[dict]:
    kernel = ensure_kernel()
    manifests = []
    for i, src in enumerate(notebooks, 1):
        log(f"[{i}/{len(notebooks)}] {src.stem} ...", flush=True)
        m = execute_notebook(src, Path(book_dir) / src.name, parameters, root=root,
                             kernel_name=kernel, log=log, progress=progress,
                             failed_dir=Path(root) / "_build" / "failed")
        log(f"[{i}/{len(notebooks)}] {src.stem}: {m['wall_time_s']:.1f} s", flush=True)
        manifests.append(m)
    return manifests




# ------------------------------------------------------------------------------------------ build
def _config_digest(root: Path) -> str:
    h = hashlib.sha256()
    for name in ("_config.yml", "_toc.yml"):
        p = root / name
        h.update(p.read_bytes() if p.is_file() else b"")
    # the book's Sphinx extension shapes every page: a new version of it needs every page written again
    from priorlib.compendium import sphinxext
    h.update(Path(sphinxext.__file__).read_bytes())
    return h.hexdigest()


def _give_redirect_an_icon(index: Path) -> None:
    """jupyter-book's root ``index.html`` only redirects to the first page. Without an icon of its own a
    browser that lingers on it asks for ``/favicon.ico`` (a 404 and a console error on an offline site), and
    a real icon's request is cut off by the redirect; an empty inline icon asks for nothing."""
    html = index.read_text()
    link = '<link rel="icon" href="data:," />'
    if link not in html:
        index.write_text(link + "\n" + html)


def build_book(root, *, clean: bool = False, log=print) -> Path:
    """``jupyter-book build <root>``; a changed ``_config.yml``, ``_toc.yml`` or book extension
    (:mod:`priorlib.compendium.sphinxext`) triggers a clean build.

    (Sphinx does not drop stale script tags such as a changed ``nb_ipywidgets_js`` on its own.)
    """
    root = Path(root)
    build = root / "_build"
    stamp = build / ".priorlib-config"
    digest = _config_digest(root)
    if clean or not stamp.is_file() or stamp.read_text() != digest:
        for sub in ("html", ".doctrees", "jupyter_execute"):
            shutil.rmtree(build / sub, ignore_errors=True)
    from priorlib.compendium import provenance
    provenance.write(root)
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book.cli.main"]
    cmd += ["build", str(root), "--builder", "html"]
    log("building the book with jupyter-book ...", flush=True)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    out = (res.stdout or "") + (res.stderr or "")
    warnings = [line for line in out.splitlines() if "WARNING" in line or "ERROR" in line]
    for line in warnings:
        log("  " + line)
    index = build / "html" / "index.html"
    if res.returncode != 0 or not index.is_file():
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise ValueError(f"jupyter-book build failed (exit {res.returncode}):\n{tail}")
    _give_redirect_an_icon(index)
    build.mkdir(exist_ok=True)
    stamp.write_text(digest)
    log(f"book: {portable(index, Path.cwd())} ({time.perf_counter() - t0:.1f} s, "
        f"{len(warnings)} warning(s))", flush=True)
    return index


# -------------------------------------------------------------------------------------------- CLI
def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES, default="cpu",
                        help="the notebooks' parameter profile (default: cpu)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                        default=[], dest="parameters",
                        help="override one notebook parameter (value parsed as YAML)")
    parser.add_argument("--no-build", action="store_true", help="execute only, skip jupyter-book")
    parser.add_argument("--clean", action="store_true", help="remove _build/html before building")
    parser.add_argument("--root", default=None, help="repository root (default: found from cwd)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (cells done / cells, elapsed time) on a terminal while a notebook runs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="execute only these notebooks (01, 01_proof_of_concept or proof_of_concept)")
    parser.add_argument("--no-execute", action="store_true",
                        help="build from the executed copies already in book/ (seconds)")
    parser.add_argument("--bank-only", action="store_true",
                        help="train nothing: every run must come from the evidence bank (checked against the "
                             "chapters' plans before any notebook executes; a run the bank lacks is an error)")


def run(args) -> int:
    t0 = time.perf_counter()
    root = repo_root(args.root)
    if not args.no_execute:
        params = parameters_from_args(args.profile, args.parameters)
        notebooks = find_notebooks(root / "notebooks", args.only)
        if getattr(args, "bank_only", False) and notebooks:
            from priorlib.compendium import evidence
            for chapter, configs in evidence.plan_all(args.profile, [nb.stem for nb in notebooks]).items():
                evidence.check_in_bank(configs, where=chapter)  # before any notebook executes
            os.environ[evidence.BANK_ONLY_ENV] = "1"  # the kernels inherit it: run_all refuses to train
        if not notebooks:
            print("priorlib book: no notebooks/NN_*.ipynb to execute", flush=True)
        else:
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            print(f"executing {len(notebooks)} notebook(s) with {shown}", flush=True)
            execute_all(notebooks, root / "book", params, root=root, progress=not getattr(args, "no_progress", False))
    from priorlib.compendium import claims
    if claims.write(root):
        print("book/claims.md and book/key_findings.md regenerated from the executed notebooks' verdicts", flush=True)
    if not args.no_build:
        ensure_assets(root)
        build_book(root, clean=args.clean)
    print(f"done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


# -------------------------------------------------------------------------------------- leftovers
#: text that must never reach an executed notebook: the cache's progress lines and ipykernel's TCP warning
LEFTOVER_TEXT = ("cache store", "cache hit:", "running over TCP without encryption", "without encryption")
_PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def leftovers(nb) -> list[str]:
    """What an executed notebook ``nb`` (a dict or nbformat node) shows that it should not: progress-bar
    widgets (tqdm in Jupyter is an HBox of HTML + FloatProgress; "Loading weights" is one), "cache store"
    / "cache hit" lines, the kernel's "running over TCP without encryption" warning, and any other text
    on stderr (a library's warning: a chapter shows what it means to on stdout or as Markdown). One line
    each."""
    found = []
    state = (((nb.get("metadata") or {}).get("widgets") or {})
             .get("application/vnd.jupyter.widget-state+json") or {}).get("state") or {}

    def is_bar(model_id, seen=()):
        m = state.get(model_id) or {}
        if m.get("model_name") in _PROGRESS_MODELS:
            return True
        children = (m.get("state") or {}).get("children") or []
        return any(is_bar(str(c).removeprefix("IPY_MODEL_"), seen + (model_id,))
                   for c in children if str(c).removeprefix("IPY_MODEL_") not in seen)

    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            view = data.get("application/vnd.jupyter.widget-view+json")
            plain = _text(data.get("text/plain"))
            if view is not None and (is_bar(view.get("model_id")) or "Loading weights" in plain
                                     or re.search(r"\d+%\|", plain)):
                found.append(f"cell {i}: a progress-bar widget ({_first_line(plain)[:60]})")
            texts = [_text(out.get("text"))] + [_text(v) for k, v in data.items() if k.startswith("text/")]
            texts.append(_text(out.get("evalue")))
            for needle in LEFTOVER_TEXT:
                if any(needle in t for t in texts):
                    found.append(f"cell {i}: {needle!r}")
                    break
            else:
                if out.get("output_type") == "stream" and out.get("name") == "stderr" and texts[0].strip():
                    found.append(f"cell {i}: text on stderr ({_first_line(texts[0])[:60]})")
    return found
