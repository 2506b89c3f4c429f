"""Showing figures in the notebooks: every chapter displays its matplotlib figures through :func:`show`.

    from priorlib.compendium.figures import show
    show(pp.metric_bars(rows, x="prior", y="final_f1"), caption="Final F1 per prior.")  # PNG in the output; closed

A figure is rendered once, to a PNG at a fixed resolution (so the static book and the executed notebook
show the same picture), and closed: an open pyplot figure would be drawn a second time at the end of
the cell. :func:`png` is the rendering step alone (the checkpoint scrubber's frames use it).

Every figure shown gets a number, counted per kernel (one notebook: one kernel, so "Figure 3" is the third
figure of its chapter), a caption line below it (``**Figure 3.** caption``), and alt text (``alt``, else the
caption, else the figure's own titles and axis labels). Number, caption and alt travel in the output's
metadata (``image/png`` -> ``priorlib``), where the book's Sphinx extension
(:mod:`priorlib.compendium.sphinxext`) reads them and links the image to its full-size PNG.

``show`` returns None (a cell ending in it echoes nothing); :func:`last_number` and :func:`shown` give the
numbers. Every figure wants a caption: :func:`missing_captions` (at run time) and :func:`uncaptioned_calls`
(in the sources) list those without one, and ``PRIORLIB_REQUIRE_CAPTIONS=1`` makes ``show`` refuse them.
"""
from __future__ import annotations

import base64
import io
import os
from typing import NamedTuple

DPI = 90
_next_number = 1
_shown: list = []  # ShownFigure per show() in this kernel, in order


class ShownFigure(NamedTuple):
    """What :func:`show` displayed: the figure's number, its caption ("" when none) and its alt text."""
    number: int
    caption: str
    alt: str


def reset_numbering(start: int = 1) -> None:
    """Start counting figures again at ``start`` (a new kernel starts at 1 by itself); forgets what was shown."""
    global _next_number
    _next_number = start
    _shown.clear()


def shown() -> list[ShownFigure]:
    """Every figure :func:`show` displayed in this kernel (since :func:`reset_numbering`), in order."""
    return list(_shown)


def last_number() -> int | None:
    """The number of the last figure shown (None before the first): what ``show`` used to return."""
    return _shown[-1].number if _shown else None


def missing_captions() -> list[ShownFigure]:
    """The figures shown so far without a caption (their output reads just ``**Figure N.**``)."""
    return [s for s in _shown if not s.caption]


def require_captions() -> bool:
    """Whether :func:`show` refuses a figure without a caption: on when the environment variable
    ``PRIORLIB_REQUIRE_CAPTIONS`` is set to anything but ``""``/``0``. The book's executor sets it for every
    kernel (:data:`priorlib.compendium.book.KERNEL_ENV`); in a reader's own session it is off, and
    :func:`missing_captions` and :func:`uncaptioned_calls` list the figures without one."""
    return os.environ.get("PRIORLIB_REQUIRE_CAPTIONS", "") not in ("", "0")


def uncaptioned_calls(paths) -> list[tuple[str, int, str]]:
    """``(where, line, figure expression)`` for every ``show(...)`` call in the given notebooks (``.ipynb``:
    code cells, ``where`` = ``path cell N``) and Python files that passes no ``caption=`` (a static check; a
    caption that is an empty string at run time is :func:`missing_captions`' business)."""
    import ast
    import json
    from pathlib import Path

    def scan(src: str, where: str):
        src = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name == "show" and "caption" not in {k.arg for k in node.keywords} and not any(
                        k.arg is None for k in node.keywords):  # show(fig, **kw): cannot tell
                    yield where, node.lineno, ast.unparse(node.args[0]) if node.args else ""

    out = []
    for p in map(Path, paths):
        if p.suffix == ".ipynb":
            cells = json.loads(p.read_text(encoding="utf-8"))["cells"]
            for i, c in enumerate(cells):
                if c["cell_type"] == "code":
                    out += scan("".join(c["source"]), f"{p} cell {i}")
        else:
            out += scan(p.read_text(encoding="utf-8"), str(p))
    return out


def describe(fig) -> str:
    """A plain description of ``fig`` from its own text: suptitle, panel titles and (once each) axis labels."""
    def unique(items):
        return list(dict.fromkeys(x for x in items if x))

    sup = getattr(fig, "_suptitle", None)
    sup = sup.get_text().strip() if sup is not None else ""
    axes = getattr(fig, "axes", [])
    titles = unique(ax.get_title().strip() for ax in axes)
    pairs = unique(" against ".join(x for x in (ax.get_ylabel().strip(), ax.get_xlabel().strip()) if x)
                   for ax in axes)
    parts = [sup] if sup else []
    if titles:
        parts.append(("panels: " if len(titles) > 1 else "") + ", ".join(titles))
    if pairs:
        parts.append("; ".join(pairs))
    text = "; ".join(parts)
    return (text[:297] + "...") if len(text) > 300 else text


def png(fig, dpi: int | None = DPI, close: bool = True) -> bytes:
    """``fig`` as PNG bytes (tight bounding box), closed afterwards unless ``close=False``."""
    import matplotlib.pyplot as plt
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi if dpi is not None else "figure", bbox_inches="tight")
        return buf.getvalue()
    finally:
        if close:
            plt.close(fig)


def show(fig, dpi: int | None = DPI, *, caption: str | None = None, alt: str | None = None) -> None:
    """Display ``fig`` in the notebook as a PNG at ``dpi`` (None: the figure's own), numbered, with
    ``caption`` below it and ``alt`` as its alt text (default: the caption, else :func:`describe`), and
    close it. Returns None, so a cell ending in ``show(...)`` echoes nothing; the number is
    :func:`last_number` (every figure shown: :func:`shown`).

    A missing or blank ``caption`` is recorded (:func:`missing_captions`); with
    :func:`require_captions` on it is a ValueError instead, and nothing is displayed."""
    global _next_number
    from IPython.display import Markdown, display
    number = _next_number
    caption = (caption or "").strip()
    if not caption and require_captions():
        import matplotlib.pyplot as plt
        what = describe(fig) or "a figure without titles or axis labels"
        plt.close(fig)
        raise ValueError(f"Figure {number} ({what}) has no caption: pass show(fig, caption=...)")
    _next_number += 1
    text = alt or caption or describe(fig) or "a matplotlib figure without titles or axis labels"
    data = png(fig, dpi)
    meta = {"figure": number, "alt": text}
    if caption:
        meta["caption"] = caption
    display({"image/png": base64.b64encode(data).decode("ascii"), "text/plain": f"<Figure {number}: {text}>"},
            raw=True, metadata={"image/png": {"priorlib": meta}})
    display(Markdown(f"**Figure {number}.** {caption}" if caption else f"**Figure {number}.**"))
    _shown.append(ShownFigure(number, caption, text))
