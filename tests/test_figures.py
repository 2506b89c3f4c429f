"""The one figure-display helper: a PNG in the cell's output, the figure closed."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
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
    assert figures.show(fig, dpi=30) is None  # a cell ending in show(...) echoes nothing
    assert figures.last_number() == 1
    figures.show(_figure(), dpi=30, caption="Two priors.")
    figures.show(_figure(), dpi=30, caption="Two priors.", alt="Bars of F1 per prior")
    assert figures.last_number() == 3
    assert [f.number for f in figures.shown()] == [1, 2, 3]
    metas = shown.metas()
    assert [m["figure"] for m in metas] == [1, 2, 3]
    assert metas[0]["alt"] == "loss per step; loss against step"  # the figure's own text, not a file name
    assert metas[1]["alt"] == "Two priors." and metas[2]["alt"] == "Bars of F1 per prior"
    assert shown.captions() == ["**Figure 1.**", "**Figure 2.** Two priors.", "**Figure 3.** Two priors."]
    figures.reset_numbering()
    assert figures.last_number() is None and figures.shown() == []


def test_show_records_missing_captions_and_refuses_them_when_required(monkeypatch):
    shown = _capture(monkeypatch)
    figures.reset_numbering()
    monkeypatch.delenv("PRIORLIB_REQUIRE_CAPTIONS", raising=False)
    fig, ax = plt.subplots(figsize=(1.5, 1.5))
    ax.set_title("movement against lr")
    figures.show(fig, dpi=30)
    figures.show(_figure(), dpi=30, caption="   ")  # blank is missing too
    figures.show(_figure(), dpi=30, caption="  Final F1 per prior. ")
    assert [(f.number, f.caption) for f in figures.missing_captions()] == [(1, ""), (2, "")]
    assert figures.shown()[2].caption == "Final F1 per prior."
    assert shown.captions()[1:] == ["**Figure 2.**", "**Figure 3.** Final F1 per prior."]

    monkeypatch.setenv("PRIORLIB_REQUIRE_CAPTIONS", "1")
    assert figures.require_captions()
    plt.close("all")
    fig, ax = plt.subplots(figsize=(1.5, 1.5))
    ax.set_title("validation loss")
    before = len(shown)
    with pytest.raises(ValueError) as err:
        figures.show(fig, dpi=30, caption="")
    msg = str(err.value)
    assert msg == "Figure 4 (validation loss) has no caption: pass show(fig, caption=...)" and "\n" not in msg
    assert len(shown) == before and plt.get_fignums() == []  # nothing displayed, the figure closed
    figures.show(_figure(), dpi=30, caption="Now captioned.")  # the refused figure used no number
    assert figures.last_number() == 4
    monkeypatch.setenv("PRIORLIB_REQUIRE_CAPTIONS", "0")
    assert not figures.require_captions()
    figures.reset_numbering()


def test_uncaptioned_calls_finds_show_without_caption(tmp_path):
    import json
    nb = {"cells": [{"cell_type": "markdown", "source": ["show(x)"]},
                    {"cell_type": "code", "source": ["%matplotlib inline\n", "show(fig)\n",
                                                     "show(pp.bars(rows), caption=f'{n} runs')\n"]},
                    {"cell_type": "code", "source": ["figures.show(fig, alt='bars')\n", "show(fig, **kw)\n"]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "02_x.ipynb"
    path.write_text(json.dumps(nb))
    py = tmp_path / "m.py"
    py.write_text("def f(fig):\n    show(fig, caption='ok')\n    show(make(fig), dpi=30)\n")
    assert figures.uncaptioned_calls([path, py]) == [
        (f"{path} cell 1", 2, "fig"), (f"{path} cell 2", 1, "fig"), (str(py), 3, "make(fig)")]


def test_every_figure_a_notebook_shows_has_a_caption():
    """No ``show(...)`` in the nine notebooks lacks ``caption=`` (the book's figures each say what they show
    and the number that answers the question; the executor also makes a missing caption an error)."""
    from pathlib import Path
    nbs = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(nbs) == 9
    missing = figures.uncaptioned_calls(nbs)
    assert not missing, f"show(...) without caption= at {missing}"
