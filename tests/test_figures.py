"""The one figure-display helper: a PNG in the cell's output, the figure closed."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from priorlib.compendium import figures  # noqa: E402


def _figure(i: int = 1):
    fig, ax = plt.subplots(figsize=(1.5, 1.5))
    ax.plot([0, 1], [0, i])
    return fig


def test_png_renders_and_closes():
    plt.close("all")
    a, b = figures.png(_figure(1), dpi=40), figures.png(_figure(2), dpi=40)
    assert a.startswith(b"\x89PNG") and b.startswith(b"\x89PNG") and a != b
    assert plt.get_fignums() == []
    kept = _figure()
    figures.png(kept, dpi=40, close=False)
    assert plt.get_fignums() == [kept.number]
    plt.close("all")


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_show_displays_one_png_at_the_given_resolution(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    plt.close("all")
    figures.show(_figure(), dpi=40)
    figures.show(_figure(), dpi=80)
    assert plt.get_fignums() == []
    assert [type(x).__name__ for x in shown] == ["Image", "Image"] and all(x.format == "png" for x in shown)
    (w40, h40), (w80, h80) = _png_size(shown[0].data), _png_size(shown[1].data)
    assert 1.8 < w80 / w40 < 2.2 and 1.8 < h80 / h40 < 2.2


def test_show_takes_figures_outside_pyplot(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    fig = Figure(figsize=(2, 1), dpi=50)
    fig.subplots().plot([0, 1])
    figures.show(fig, dpi=None)
    assert _png_size(shown[0].data)[0] <= 2 * 50 + 2  # the figure's own dpi (tight box: at most its width)
