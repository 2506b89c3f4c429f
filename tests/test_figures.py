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


class _Shown(list):
    """What ``show`` displayed: (bundle-or-object, metadata) pairs."""

    def pngs(self):
        import base64
        return [base64.b64decode(obj["image/png"]) for obj, _ in self if isinstance(obj, dict)]

    def metas(self):
        return [md["image/png"]["priorlib"] for obj, md in self if isinstance(obj, dict)]

    def captions(self):
        return [obj.data for obj, _ in self if type(obj).__name__ == "Markdown"]


def _capture(monkeypatch) -> _Shown:
    shown = _Shown()
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append((obj, kw.get("metadata"))))
    return shown


def test_show_displays_one_png_at_the_given_resolution(monkeypatch):
    shown = _capture(monkeypatch)
    plt.close("all")
    figures.show(_figure(), dpi=40)
    figures.show(_figure(), dpi=80)
    assert plt.get_fignums() == []
    pngs = shown.pngs()
    assert len(pngs) == 2 and all(p.startswith(b"\x89PNG") for p in pngs)
    (w40, h40), (w80, h80) = _png_size(pngs[0]), _png_size(pngs[1])
    assert 1.8 < w80 / w40 < 2.2 and 1.8 < h80 / h40 < 2.2


def test_show_takes_figures_outside_pyplot(monkeypatch):
    shown = _capture(monkeypatch)
    fig = Figure(figsize=(2, 1), dpi=50)
    fig.subplots().plot([0, 1])
    figures.show(fig, dpi=None)
    assert _png_size(shown.pngs()[0])[0] <= 2 * 50 + 2  # the figure's own dpi (tight box: at most its width)


def test_show_numbers_captions_and_alt_text(monkeypatch):
    shown = _capture(monkeypatch)
    figures.reset_numbering()
    fig, ax = plt.subplots(figsize=(1.5, 1.5))
    ax.set_title("loss per step")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    assert figures.show(fig, dpi=30) == 1
    assert figures.show(_figure(), dpi=30, caption="Two priors.") == 2
    assert figures.show(_figure(), dpi=30, caption="Two priors.", alt="Bars of F1 per prior") == 3
    metas = shown.metas()
    assert [m["figure"] for m in metas] == [1, 2, 3]
    assert metas[0]["alt"] == "loss per step; loss against step"  # the figure's own text, not a file name
    assert metas[1]["alt"] == "Two priors." and metas[2]["alt"] == "Bars of F1 per prior"
    assert shown.captions() == ["**Figure 1.**", "**Figure 2.** Two priors.", "**Figure 3.** Two priors."]
    figures.reset_numbering()
