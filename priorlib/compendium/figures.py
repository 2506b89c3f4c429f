"""Showing figures in the notebooks: every chapter displays its matplotlib figures through :func:`show`.

    from priorlib.compendium.figures import show
    show(pp.metric_bars(rows, x="prior", y="final_f1"))     # a PNG in the cell's output; the figure is closed

A figure is rendered once, to a PNG at a fixed resolution (so the static book and the executed notebook
show the same picture), and closed: an open pyplot figure would be drawn a second time at the end of
the cell. :func:`png` is the rendering step alone (the checkpoint scrubber's frames use it).

Every figure shown gets a number, counted per kernel (one notebook: one kernel, so "Figure 3" is the third
figure of its chapter), a caption line below it (``**Figure 3.** caption``), and alt text (``alt``, else the
caption, else the figure's own titles and axis labels). Number, caption and alt travel in the output's
metadata (``image/png`` -> ``priorlib``), where the book's Sphinx extension
(:mod:`priorlib.compendium.sphinxext`) reads them and links the image to its full-size PNG.
"""
from __future__ import annotations

import base64
import io
import itertools

DPI = 90
_numbers = itertools.count(1)


def reset_numbering(start: int = 1) -> None:
    """Start counting figures again at ``start`` (a new kernel starts at 1 by itself)."""
    global _numbers
    _numbers = itertools.count(start)


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


def show(fig, dpi: int | None = DPI, *, caption: str | None = None, alt: str | None = None) -> int:
    """Display ``fig`` in the notebook as a PNG at ``dpi`` (None: the figure's own), numbered, with
    ``caption`` below it and ``alt`` as its alt text (default: the caption, else :func:`describe`), and
    close it. Returns the figure's number."""
    from IPython.display import Markdown, display
    number = next(_numbers)
    text = alt or caption or describe(fig) or "a matplotlib figure without titles or axis labels"
    data = png(fig, dpi)
    meta = {"figure": number, "alt": text}
    if caption:
        meta["caption"] = caption
    display({"image/png": base64.b64encode(data).decode("ascii"), "text/plain": f"<Figure {number}: {text}>"},
            raw=True, metadata={"image/png": {"priorlib": meta}})
    display(Markdown(f"**Figure {number}.** {caption}" if caption else f"**Figure {number}.**"))
    return number
