"""The book's offline JavaScript: MathJax, require.js and the ipywidgets HTML manager, pinned in
package.json, copied from ``node_modules`` into ``book/_static/vendor/``.

    ensure_assets(repo_root())      # `npm ci` on first use, then copies only what changed
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


# what the book needs from node_modules (see package.json): source -> destination under vendor/
ASSETS = (
    ("requirejs/require.js", "require.js"),
    ("@jupyter-widgets/html-manager/dist/embed-amd.js", "html-manager/embed-amd.js"),
    # fonts of the widget CSS, loaded relative to window.__jupyter_widgets_assets_path__
    ("@jupyter-widgets/html-manager/dist/*.woff2", "html-manager/"),
    ("@jupyter-widgets/html-manager/dist/*.woff", "html-manager/"),
    ("@jupyter-widgets/html-manager/dist/*.ttf", "html-manager/"),
    ("@jupyter-widgets/html-manager/dist/*.eot", "html-manager/"),
    ("@jupyter-widgets/html-manager/dist/*.svg", "html-manager/"),
    ("mathjax/es5/tex-chtml.js", "mathjax/tex-chtml.js"),
    ("mathjax/es5/output/chtml/fonts/woff-v2/*", "mathjax/output/chtml/fonts/woff-v2/"),
    ("mathjax/es5/input/tex/extensions/**", "mathjax/input/tex/extensions/"),  # \require, autoload
    ("mathjax/es5/ui/*", "mathjax/ui/"),  # the right-click menu
    ("mathjax/es5/a11y/*", "mathjax/a11y/"),  # loaded on demand from the menu
)


def npm_ci(root: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError(
            "npm not found: the book's offline JavaScript (MathJax, require.js, the ipywidgets "
            "HTML manager) comes from package.json; install Node.js/npm, then rerun"
        )
    cmd = [npm, "ci" if (root / "package-lock.json").is_file() else "install",
           "--no-audit", "--no-fund", "--loglevel=error"]
    print(f"priorlib book: {' '.join(cmd[1:])} (first use) ...", flush=True)
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if res.returncode != 0:
        first = ((res.stderr or res.stdout).strip().splitlines() or ["no output"])[0]
        raise ValueError(f"npm failed in {root}: {first}")


def ensure_assets(root, node_modules=None) -> Path:
    """Copy the pinned npm assets into ``book/_static/vendor/`` (``npm ci`` first if needed)."""
    root = Path(root)
    nm = Path(node_modules) if node_modules else root / "node_modules"
    if not all((nm / src).exists() for src, _ in ASSETS if "*" not in src):
        if node_modules is not None:
            raise FileNotFoundError(f"npm assets missing under {nm}")
        npm_ci(root)
    vendor = root / "book" / "_static" / "vendor"
    for src, dst in ASSETS:
        if "*" in src:
            base, pattern = src.split("/*", 1)
            found = (nm / base).rglob("*") if pattern == "*" else (nm / base).glob("*" + pattern)
            files = [p for p in found if p.is_file()]
            for f in files:
                rel = f.relative_to(nm / base)
                copy_if_changed(f, vendor / dst / rel)
        else:
            copy_if_changed(nm / src, vendor / dst)
    return vendor


def copy_if_changed(src: Path, dst: Path) -> None:
    if dst.is_file() and dst.stat().st_size == src.stat().st_size \
            and dst.stat().st_mtime >= src.stat().st_mtime:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
