"""Showing figures in the notebooks: every chapter displays its matplotlib figures through :func:`show`.

    from priorlib.compendium.figures import show
    show(pp.metric_bars(rows, x="prior", y="final_f1"))     # a PNG in the cell's output; the figure is closed

A figure is rendered once, to a PNG at a fixed resolution (so the static book and the executed notebook
show the same picture), and closed: an open pyplot figure would be drawn a second time at the end of
the cell. :func:`png` is the rendering step alone (the checkpoint scrubber's frames use it).
"""
from __future__ import annotations

import io

DPI = 90


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
    """Display ``fig`` in the notebook as a PNG at ``dpi`` (None: the figure's own) and close it.

    ``caption`` and ``alt`` are accepted for the numbered-figure display (not used here yet)."""
    from IPython.display import Image, display
    display(Image(png(fig, dpi)))
