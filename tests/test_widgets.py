"""The checkpoint scrubber: a Stack of pre-rendered images driven by jslinked slider and play."""
from __future__ import annotations

import ipywidgets as widgets
from ipywidgets.widgets.widget_link import Link
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from priorlib.compendium.figures import png  # noqa: E402
from priorlib.compendium.widgets import checkpoint_scrubber  # noqa: E402


def _figures(n):
    figs = []
    for i in range(n):
        fig, ax = plt.subplots(figsize=(1.5, 1.5))
        ax.plot([0, 1], [0, i])
        figs.append(fig)
    return figs


@pytest.mark.parametrize("n", [1, 4])
def test_scrubber_links_slider_play_and_stack(n):
    plt.close("all")
    box = checkpoint_scrubber(_figures(n), labels=[f"step {i}" for i in range(n)], dpi=40)
    assert plt.get_fignums() == []  # the figures were rendered and closed
    stack, slider, play = box.stack, box.slider, box.play
    assert isinstance(stack, widgets.Stack) and len(stack.children) == n
    assert stack.selected_index == 0
    assert (slider.min, slider.max, slider.value) == (0, n - 1, 0)
    assert (play.min, play.max) == (0, n - 1)
    assert all(isinstance(img, widgets.Image) and img.format == "png" for img in box.images)

    links = box.links
    assert all(isinstance(link, Link) for link in links)  # jslink: runs in the browser
    pairs = {(link.source[0].model_id, link.source[1], link.target[0].model_id, link.target[1])
             for link in links}
    assert (play.model_id, "value", slider.model_id, "value") in pairs
    assert (slider.model_id, "value", stack.model_id, "selected_index") in pairs
    # everything the page needs is a child of the returned box (so its state is saved with it)
    assert box.children[0].children == (play, slider) and box.children[1] is stack


def test_scrubber_accepts_png_bytes_without_labels():
    pngs = [png(f, dpi=30) for f in _figures(3)]
    box = checkpoint_scrubber(pngs)
    assert [img.value for img in box.stack.children] == pngs
    assert box.slider.max == 2


def test_scrubber_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        checkpoint_scrubber([])
    with pytest.raises(ValueError, match="labels"):
        checkpoint_scrubber([png(f, dpi=30) for f in _figures(2)], labels=["only one"])
    with pytest.raises(ValueError, match="PNG"):
        checkpoint_scrubber([b"not a png"])
    with pytest.raises(TypeError, match="Figure or PNG"):
        checkpoint_scrubber([42])


def test_scrubber_has_a_noscript_fallback_with_its_last_frame():
    import base64

    from priorlib.compendium.widgets import NOSCRIPT_NOTICE

    frames = _figures(3)
    box = checkpoint_scrubber(frames, labels=["a", "b", "c"])
    last = box.images[-1].value
    assert box.fallback.startswith("<noscript>") and box.fallback.endswith("</noscript>")
    assert NOSCRIPT_NOTICE in box.fallback and "c (frame 3 of 3)" in box.fallback
    assert base64.b64encode(last).decode() in box.fallback
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the widget itself is displayed unchanged
