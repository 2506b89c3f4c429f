"""Widgets that keep working in the static book.

The checkpoint scrubber shows one pre-rendered PNG per checkpoint. All frames live in a
``widgets.Stack`` of ``widgets.Image``; the stack's ``selected_index`` is tied to an ``IntSlider``
and a ``Play`` button with ``widgets.jslink``. A jslink runs in the browser, so the saved widget
state (nbclient stores it in ``metadata.widgets``) is enough for the slider to work in the HTML
book with no kernel behind it. ``interact`` would need a kernel and is deliberately not used.
"""
from __future__ import annotations

import base64
from functools import lru_cache
from typing import Sequence

from priorlib.compendium.figures import png

__all__ = ["checkpoint_scrubber", "NOSCRIPT_NOTICE"]

NOSCRIPT_NOTICE = ("JavaScript is off, so the checkpoint slider cannot run; shown here is its last frame"
                   " as a plain image.")


def fallback_html(png_bytes: bytes, label: str | None, n: int) -> str:
    """The ``<noscript>`` block: the last frame (``label``, frame ``n`` of ``n``) and the notice."""
    what = f"{_escape(label)} (frame {n} of {n})" if label else f"frame {n} of {n}"
    alt = f"Last checkpoint frame: {what}"
    b64 = base64.b64encode(png_bytes).decode("ascii")
    return (f'<noscript><div class="priorlib-scrubber-fallback"><p class="priorlib-scrubber-notice">'
            f"{NOSCRIPT_NOTICE} Last frame: {what}.</p>"
            f'<img src="data:image/png;base64,{b64}" alt="{alt}"/></div></noscript>')


@lru_cache(maxsize=None)
def _scrubber_class():
    import ipywidgets as widgets

    class Scrubber(widgets.VBox):
        """A VBox that, displayed, also displays its static fallback (see :func:`fallback_html`)."""

        fallback = ""

        def _ipython_display_(self, **kwargs):
            from IPython.display import HTML, display
            display(self._repr_mimebundle_(**kwargs), raw=True)
            display(HTML(self.fallback))

    return Scrubber


def _as_png(frame, dpi: int) -> bytes:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        data = bytes(frame)
        if not data.startswith(b"\x89PNG"):
            raise ValueError("checkpoint_scrubber: a bytes frame must be a PNG image")
        return data
    if hasattr(frame, "savefig"):
        return png(frame, dpi=dpi)
    raise TypeError(
        f"checkpoint_scrubber: a frame must be a matplotlib Figure or PNG bytes, not {type(frame).__name__}"
    )


def checkpoint_scrubber(
    frames: Sequence,
    labels: Sequence[str] | None = None,
    dpi: int = 72,
    description: str = "checkpoint",
    interval_ms: int = 600,
):
    """A slider + play button over pre-rendered checkpoint images; works without a kernel.

    ``frames``: matplotlib Figures (rendered at ``dpi`` and closed) or PNG bytes, one per checkpoint.
    ``labels``: optional text per frame (e.g. ``"step 200"``), shown above the image.
    Returns a ``widgets.VBox``; its ``.stack``, ``.slider`` and ``.play`` attributes are the parts, and
    ``.fallback`` the HTML shown instead when JavaScript is off.
    """
    import ipywidgets as widgets

    frames = list(frames)
    if not frames:
        raise ValueError("checkpoint_scrubber: needs at least one frame")
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != len(frames):
            raise ValueError(
                f"checkpoint_scrubber: {len(labels)} labels for {len(frames)} frames"
            )
    pngs = [_as_png(frame, dpi) for frame in frames]
    n = len(pngs)

    images = [widgets.Image(value=png, format="png") for png in pngs]
    children = images
    if labels is not None:
        # the label travels with its frame, so no kernel is needed to update it
        children = [
            widgets.VBox([widgets.HTML(f"<b>{_escape(label)}</b>"), image])
            for label, image in zip(labels, images)
        ]
    stack = widgets.Stack(children=children, selected_index=0)
    slider = widgets.IntSlider(
        value=0, min=0, max=n - 1, step=1, description=description, continuous_update=True
    )
    play = widgets.Play(value=0, min=0, max=n - 1, step=1, interval=interval_ms, description="play")
    links = [
        widgets.jslink((play, "value"), (slider, "value")),
        widgets.jslink((slider, "value"), (stack, "selected_index")),
    ]
    box = _scrubber_class()([widgets.HBox([play, slider]), stack])
    box.fallback = fallback_html(pngs[-1], labels[-1] if labels else None, n)
    box.add_class("priorlib-scrubber")
    box.stack, box.slider, box.play, box.links, box.images = stack, slider, play, links, images
    return box


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
