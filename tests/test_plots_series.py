"""Figures with many series: every series its own (colour, line style / marker), the legend saying which
factor each encodes, and the learning curve's y-label naming its unit and its question count."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from priorlib.compendium.plots import posterior as pp, styles, training as tp  # noqa: E402
from priorlib.config import TrainConfig  # noqa: E402

PRIORS = ["isotropic", "xavier", "fitted-gaussian", "vocab-sample"]


class _Run:
    def __init__(self, config: TrainConfig, k: int):
        self.config, self.k = config, k

    def history(self):
        s = np.arange(40)
        return pd.DataFrame({"step": s, "loss": 3.0 / (1 + s) + 0.01 * self.k})

    def evals(self):
        s = np.arange(0, 60, 10)
        return pd.DataFrame({"step": s, "plateau_loss": 2.0 / (1 + s) + 0.01 * self.k})


def _runs(vary: str, **fields):
    values = {"lr": [1e-3, 1e-2, 5e-2], "seed": [0, 1, 2]}[vary]
    return [_Run(TrainConfig(prior=p, **{vary: v}, **fields), k)
            for k, (p, v) in enumerate((p, v) for p in PRIORS for v in values)]


def _look(line):
    return to_hex(line.get_color()), str(line.get_linestyle()), str(line.get_marker())


def test_colours_stay_distinct_past_ten():
    for n in (4, 10, 12, 20):
        assert len({to_hex(c) for c in styles.colours(n)}) == n


def test_series_styles_give_distinct_looks_and_one_colour_per_group():
    groups = [p for p in PRIORS for _ in range(3)]
    variants = [lr for _ in PRIORS for lr in (1e-3, 1e-2, 5e-2)]
    looks = styles.series_styles(groups, variants)
    pairs = {(to_hex(x["color"]), str(x["linestyle"])) for x in looks}
    assert len(pairs) == 12  # 12 series, 12 distinct (colour, line style) pairs
    by_group = {g: {to_hex(x["color"]) for x, gg in zip(looks, groups) if gg == g} for g in PRIORS}
    assert all(len(c) == 1 for c in by_group.values()) and len(set().union(*by_group.values())) == 4
    # many variants per colour: the marker takes over when the line styles run out
    many = styles.series_styles(["a"] * 14, list(range(14)))
    assert len({(str(x["linestyle"]), x["marker"]) for x in many}) == 14
    assert styles.split_title("vocab-sample lr=0.01 seed=0") == ("vocab-sample", "lr=0.01 seed=0")


def test_loss_curves_twelve_runs_colour_by_prior_style_by_seed():
    plt.close("all")
    runs = _runs("seed", lr=5e-2)
    fig = pp.loss_curves(runs, label_fn=lambda c: f"{c.prior} seed {c.seed}", title="Training loss")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 12 and len({_look(x) for x in lines}) == 12
    assert len({to_hex(x.get_color()) for x in lines}) == 4  # colour = prior
    assert len({str(x.get_linestyle()) for x in lines}) == 3  # line style = seed
    leg = fig.axes[0].get_legend()
    assert leg.get_title().get_text() == "colour: prior; line style: seed"
    assert [t.get_text() for t in leg.get_texts()][:2] == ["isotropic seed 0", "isotropic seed 1"]
    plt.close(fig)


def test_val_curves_distinct_styles_and_a_ylabel_with_unit_and_question_count():
    plt.close("all")
    runs = _runs("lr", plateau_eval_size=32, eval_size=100)
    fig = tp.val_curves(runs, label_fn=lambda c: f"{c.prior} lr {c.lr:g}", title="Validation loss", target=0.5)
    ax = fig.axes[0]
    lines = [x for x in ax.get_lines() if not x.get_label().startswith("target")]
    assert len(lines) == 12 and len({_look(x) for x in lines}) == 12
    assert ax.get_legend().get_title().get_text() == "colour: prior; line style: learning rate"
    assert ax.get_ylabel() == "held-out answer loss (nats per answer token),\nfirst 32 held-out questions"
    plt.close(fig)
    fig = tp.val_curves([_Run(TrainConfig(plateau_eval_size=64, eval_size=16), 0)], label_fn=lambda c: "one", title="t")
    assert "first 16 held-out questions" in fig.axes[0].get_ylabel()  # the curve cannot hold more than the set
    plt.close(fig)


def test_tsne_map_twelve_runs_get_twelve_looks(monkeypatch):
    import priorlib.projection
    monkeypatch.setattr(priorlib.projection, "tsne",
                        lambda x, **kw: np.random.default_rng(0).normal(size=(len(x), 2)))
    plt.close("all")
    d, g = 8, torch.Generator().manual_seed(0)
    panels = [(f"{p} lr={lr} seed=0", torch.randn(3, d, generator=g), torch.randn(3, d, generator=g))
              for p in PRIORS for lr in (0.001, 0.01, 0.05)]
    fig = pp.tsne_map(None, torch.randn(50, d, generator=g), panels, n_cloud=50)
    ax = fig.axes[0]
    filled = [c for c in ax.collections if c.get_label() in {t for t, _, _ in panels}]
    assert len(filled) == 12
    looks = {(to_hex(c.get_facecolor()[0]), c.get_paths()[0].vertices.round(3).tobytes()) for c in filled}
    assert len(looks) == 12  # isotropic lr=0.001 and vocab-sample lr=0.01 no longer share one blue
    assert len({to_hex(c.get_facecolor()[0]) for c in filled}) == 4
    assert ax.get_legend().get_title().get_text() == "colour: prior; marker: lr"
    plt.close(fig)
