"""Notebook 07 (regularisation vs posterior and quality): the logic in chapter ``07_regularisation`` on
synthetic tables (fast), and the notebook executed end to end with ``-p profile smoke`` (slow)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from priorlib.compendium import runs as sec
from priorlib.compendium import chapter
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup
s07 = chapter("07_regularisation")

RADIUS, GAP = 25.0, 2.0


# ----------------------------------------------------------------------------------------------- settings
def test_settings_share_notebook_02_sizes_and_baseline_run():
    s = setup("07_regularisation", "cpu")
    s2 = setup("02_lr_priors", "cpu")
    assert (s.model, s.steps, s.batch_size, s.max_length, s.eval_size) == \
        (s2.model, s2.steps, s2.batch_size, s2.max_length, s2.eval_size)
    cfgs = s.configs()
    assert len(cfgs) == len(s.seeds) + sum(len(w) for w in s.weights.values()) <= 20
    assert len({c.key() for c in cfgs}) == len(cfgs)
    keys02 = {c.key() for c in sec.lr_seed_grid(s2, s2.base()) if c.prior == s.prior and c.lr == s.lr}
    base_keys = {c.key() for c in cfgs if s07.regulariser_of(c)[0] == s07.BASELINE}
    assert keys02 and keys02 <= base_keys  # notebook 02's run is this notebook's seed-0 baseline
    for c in cfgs:
        name, w = s07.regulariser_of(c)
        if name != s07.BASELINE:
            assert c.seed == s.seeds[0] and w in s.weights[name]
    assert str(s.out_dir).endswith("07_regularisation") and s.notebook == "07"
    assert s07.shares_baseline_with_02(s) and not s07.shares_baseline_with_02(setup("07_regularisation", "smoke"))


def test_settings_reject_bad_parameters_before_any_compute():
    with pytest.raises(ValueError, match="unknown regulariser"):
        setup("07_regularisation", "smoke", weights={"dropout": [1.0]})
    with pytest.raises(ValueError, match="positive"):
        setup("07_regularisation", "smoke", weights={"prior_l2": [0.0, 1.0]})
    with pytest.raises(ValueError, match="below 1"):
        setup("07_regularisation", "smoke", lr=0.1, weights={"weight_decay": [10.0]})
    with pytest.raises(ValueError, match="unknown profile"):
        setup("07_regularisation", "gpu")
    with pytest.raises(ValueError):
        setup("07_regularisation", "smoke", prior="no-such-prior")
    s = setup("07_regularisation", "smoke", weights={"nearest_token": 3}, seeds=[4])
    assert s.weights == {"nearest_token": [3.0]} and len(s.configs()) == 2
    assert s.configs()[1].reg_nearest_token == 3.0 and s.configs()[1].seed == 4


def test_regulariser_of_reads_the_one_switched_on():
    s = setup("07_regularisation", "smoke")
    base = s.base(prior=s.prior, lr=s.lr)
    assert s07.regulariser_of(base) == ("none", 0.0)
    assert s07.regulariser_of(base.from_dict({**base.to_dict(), "weight_decay": 0.5})) == ("weight_decay", 0.5)
    with pytest.raises(ValueError, match="several"):
        s07.regulariser_of(base.from_dict({**base.to_dict(), "weight_decay": 0.5, "reg_prior_l2": 1.0}))


# ----------------------------------------------------------------------------------------------- summaries
def _table(val_shift: float = 0.0, hinge_moves: bool = False, reg_seeds: int = 3, plateaued=True) -> pd.DataFrame:
    """Baseline (3 seeds: val loss 1.00 / 1.01 / 1.02, Mahalanobis 55 / 56 / 57, nn 4.5 / 4.55 / 4.6, moved 4 / 4.1 /
    4.2, norm 5 / 5.1 / 5.2) and three weights per regulariser at ``reg_seeds`` seeds (val loss as the baseline's);
    each pull halves its target per decade (1% apart between seeds); ``val_shift`` is added to the val loss of
    the largest weights."""
    rows = []
    base = dict(median_mahalanobis=55.0, median_nn_l2=4.5, median_nn_cos=0.55, share_in_hdr=0.0, moved_l2=4.0,
                median_norm=5.0, final_val_loss=1.0, final_f1=40.0, final_exact_match=20.0, final_precision=40.0,
                final_recall=40.0, plateaued=plateaued)
    for seed in range(3):
        bump = seed / 2
        rows.append(dict(base, regulariser="none", weight=0.0, seed=seed, median_mahalanobis=55.0 + 2 * bump,
                         median_nn_l2=4.5 + 0.1 * bump, moved_l2=4.0 + 0.2 * bump, median_norm=5.0 + 0.2 * bump,
                         final_val_loss=1.0 + 0.01 * seed))
    for name, r in s07.REGULARISERS.items():
        for k, w in enumerate((1.0, 10.0, 100.0)):
            for seed in range(reg_seeds):
                row = dict(base, regulariser=name, weight=w, seed=seed, final_val_loss=1.0 + 0.01 * seed)
                if r.direction < 0:
                    row[r.acts_on] = base[r.acts_on] * 0.5 ** (k + 1) * (1 + 0.01 * seed)
                elif hinge_moves:
                    row[r.acts_on] = base[r.acts_on] + 10.0 * (k + 1) + 0.1 * seed
                else:
                    row[r.acts_on] = base[r.acts_on] * (1 + 0.01 * seed)
                if k == 2:
                    row["final_val_loss"] += val_shift
                rows.append(row)
    return pd.DataFrame(rows)


def test_baseline_stats():
    t = _table()
    b = s07.baseline_stats(t, "final_val_loss")
    assert b["mean"] == pytest.approx(1.01) and b["sd"] == pytest.approx(0.01) and b["n"] == 3
    with pytest.raises(ValueError, match="baseline"):
        s07.baseline_stats(t[t["regulariser"] != "none"], "final_val_loss")


def test_strongest_runs_and_the_scrubbed_run_known_answers():
    """The placement figures show the first unregularised run, then each regulariser at its largest weight;
    the scrubber the nearest-token one (else the first named)."""
    from types import SimpleNamespace
    s = setup("07_regularisation", "smoke")
    base = s.base(prior=s.prior, lr=s.lr)

    def run(seed, **reg):
        return SimpleNamespace(config=base.from_dict({**base.to_dict(), "seed": seed, **reg}))
    runs = [run(1, weight_decay=0.5), run(0), run(1), run(0, weight_decay=5.0), run(2, weight_decay=5.0),
            run(0, reg_nearest_token=1.0), run(0, reg_nearest_token=0.1)]
    shown = s07.strongest_runs(runs, ["weight_decay", "nearest_token"])
    assert [(r.config.seed, s07.regulariser_of(r.config)) for r in shown] == \
        [(0, ("none", 0.0)), (0, ("weight_decay", 5.0)), (0, ("nearest_token", 1.0))]
    with pytest.raises(ValueError, match="no run of regulariser 'prior_l2'"):
        s07.strongest_runs(runs, ["prior_l2"])
    with pytest.raises(ValueError, match="no unregularised run"):
        s07.strongest_runs(runs[:1], ["weight_decay"])
    table = pd.DataFrame({"key": [r.config.key() for r in runs], "weight": [0.5, 0, 0, 5, 5, 1, 0.1],
                          "regulariser": ["weight_decay", "none", "none", "weight_decay", "weight_decay",
                                          "nearest_token", "nearest_token"],
                          "median_nn_l2": [1.0, 4.0, 4.2, 2.0, 2.1, 0.5, 3.0], "sampled_median_nn_l2": [9.0] * 7})
    name, r, row = s07.scrubbed_run(runs, table, ["weight_decay", "nearest_token"])
    assert name == "nearest_token" and r is runs[5] and row.weight == 1
    assert s07.scrubbed_run(runs, table, ["weight_decay"])[1] is runs[3]
    text = s07.scrubbed_run_sentence(name, row, table)
    assert "weight 1;" in text and "median 0.5 from" in text and "unregularised: 4.1;" in text and "sample: 9)" in text


def test_curves_start_at_the_baseline_mean():
    c = s07.curves(_table())
    assert list(c["regulariser"].unique()) == list(s07.REGULARISERS)
    nt = c[c["regulariser"] == "nearest_token"].sort_values("weight")
    assert list(nt["weight"]) == [0.0, 1.0, 10.0, 100.0] and list(nt["n"]) == [3, 3, 3, 3]
    assert nt["median_nn_l2"].iloc[0] == pytest.approx(4.55)
    assert nt["median_nn_l2"].iloc[-1] == pytest.approx(4.5 / 8 * 1.01)


def test_curve_summary_decides_moves_and_quality_with_the_protocol():
    summ = s07.curve_summary(_table(val_shift=0.5)).set_index("regulariser")
    assert list(summ.index) == list(s07.REGULARISERS)
    pl = summ.loc["prior_l2"]
    assert pl["target"] == "moved_l2" and pl["target_baseline"] == pytest.approx(4.1)
    assert pl["target_at_largest"] == pytest.approx(0.505) and pl["delta"] == pytest.approx(0.505 - 4.1)
    assert pl["moves"] == "agrees" and pl["moves_ci"][1] < 0 and pl["rho"] == pytest.approx(-1.0, abs=0.15)
    assert pl["target_min"] == pytest.approx(0.505) and pl["target_max"] == pytest.approx(4.1)
    # +0.5 nats at the largest weight: ten margins away, so not the same quality
    assert pl["quality"] == "contradicts" and pl["worst_weight"] == 100.0
    assert pl["worst_val_loss_change"] == pytest.approx(0.5)
    # the hinge did not move its target: it is a push, and flat data do not count as one
    assert summ.loc["mahalanobis_hinge", "moves"] != "agrees"
    assert s07.curve_summary(_table(hinge_moves=True)).set_index("regulariser").loc["mahalanobis_hinge", "moves"] == "agrees"
    assert (s07.curve_summary(_table(val_shift=0.0))["quality"] == "agrees").all()
    assert (s07.curve_summary(_table(reg_seeds=2))["quality"] == "inconclusive").all()        # two seeds
    assert (s07.curve_summary(_table(plateaued=False))["quality"] == "inconclusive").all()    # not plateaued


def test_inside_cloud_uses_either_criterion():
    t = pd.DataFrame({"median_mahalanobis": [20.0, 40.0, 40.0], "median_nn_l2": [5.0, 1.0, 3.0]})
    assert list(s07.inside_cloud(t, RADIUS, GAP)) == [True, True, False]


def test_verdicts_07_rules():
    t = _table(val_shift=0.5)
    rows, num = s07.verdicts_07(t, s07.curve_summary(t), hdr_radius=RADIUS, vocab_gap=GAP)
    A, C, I = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE
    assert len(rows) == 3 and all(isinstance(r, V.Verdict) for r in rows)
    assert [r.claim_id for r in rows] == ["regularisation-moves", "quality-flat-over-placement", "held-inside-for-free"]
    assert rows[0].outcome is A and num["pull_regularisers_moving"] == 4 == num["pull_regularisers"]
    assert "hinge only acts inside the 95% radius" in rows[0].measured and "Rule:" in rows[0].measured
    assert rows[1].outcome is C and num["quality_outcomes"] == {"agrees": 10, "contradicts": 5} and num["n_arms"] == 15
    assert num["worst_run"]["weight"] == 100.0 and "+0.5" in rows[1].measured and "margin ±0.05" in rows[1].measured
    # inside the cloud: Mahalanobis pulls to 55/4, 55/8 < 25 at w 10 and 100 (w 1: 27.5 > 25), the nearest-token
    # pull to 4.5/4 = 1.125 and 0.5625 < 2 at w 10 and 100; the w=10 ones are at baseline quality
    assert sorted(num["inside_runs"]) == sorted(["mahalanobis w=10", "mahalanobis w=100",
                                                 "nearest_token w=10", "nearest_token w=100"])
    assert sorted(num["inside_runs_within_tolerance"]) == ["mahalanobis w=10", "nearest_token w=10"]
    assert rows[2].outcome is A and not num["baseline_inside"]
    # quality flat and nothing inside the cloud; Mahalanobis and nearest token now push away from their anchors
    t2 = _table(val_shift=0.0)
    t2.loc[t2["regulariser"].isin(["mahalanobis", "nearest_token"]), ["median_mahalanobis", "median_nn_l2"]] = [80.0, 6.0]
    rows, num = s07.verdicts_07(t2, s07.curve_summary(t2), hdr_radius=RADIUS, vocab_gap=GAP)
    assert rows[1].outcome is A and rows[2].outcome is I and num["inside_runs"] == []
    assert rows[0].outcome is C
    assert list(V.frame(rows)["verdict"]) == ["contradicts", "agrees", "inconclusive"]
    # one seed per regularised arm (the cpu profile's design): quality cannot be decided
    t3 = _table(reg_seeds=1)
    rows, _ = s07.verdicts_07(t3, s07.curve_summary(t3), hdr_radius=RADIUS, vocab_gap=GAP)
    assert [r.outcome for r in rows] == [I, I, I]


def test_figures_draw_from_synthetic_tables():
    import matplotlib.pyplot as plt
    from priorlib.compendium.plots import regularisation as rp
    t = _table(val_shift=0.3)
    fig = rp.tradeoff(s07.curves(t), t, refs={"median_mahalanobis": [(RADIUS, "radius"), (24.0, "prior")]})
    assert len(fig.axes) == 8 and fig.axes[0].get_xlabel().startswith("median Mahalanobis")
    plt.close(fig)
    fig = rp.divergence_vs_weight(t, s07.curve_summary(t))
    assert len(fig.axes) == 5 and fig.axes[0].get_xscale() == "log"
    plt.close(fig)


def test_divergence_caption_states_each_regulariser_at_its_largest_weight():
    t = _table(val_shift=0.5)
    cap = s07.divergence_caption(t, s07.curve_summary(t))
    assert "against its weight (x, log scale)" in cap and "the regularised runs (seeds 0, 1, 2)" in cap
    assert "the range of the 3 unregularised seeds" in cap
    # baseline mean 4.1 moved; the largest weight halves it three times (mean over seeds 1.01x): 0.505
    assert "L2 to prior sample (w=100) takes the distance moved from 4.1 to 0.505 embedding units (agrees)" in cap
    assert "nearest token (w=100) takes the nearest-token L2 from 4.55 to 0.568 embedding units (agrees)" in cap
    assert "weight decay (w=100) takes the row norm from 5.1 to 0.631 embedding units (agrees)" in cap
    assert "Mahalanobis hinge (w=100) takes the Mahalanobis distance from 56 to 55.6 whitened units (" in cap
    assert cap.count("(agrees)") == 4 and cap.endswith("4 of 4 pull-type regularisers move their measure towards its anchor.")


def test_tradeoff_caption_counts_points_outside_the_seed_band():
    t = _table(val_shift=0.5)
    c = s07.curves(t)
    cap = s07.tradeoff_caption(c, t, "final_val_loss", ("median_mahalanobis", "median_nn_l2"))
    assert cap.startswith("Final validation loss (nats/token, y) against the median Mahalanobis distance to the "
                          "token-embedding Gaussian (whitened units) and median L2 to the nearest token embedding "
                          "(embedding units) of the trained prompt")
    assert "each point a mean over 3 seeds" in cap and "crosses the 3 unregularised seeds" in cap
    assert "grey band their range (1.000–1.020)" in cap
    # the runs span Mahalanobis 55/8 = 6.88 to 57 and nearest-token L2 4.5/8 = 0.562 to 4.6; every largest
    # weight sits +0.5 nats above the baseline mean (the first, prior L2, is named)
    assert "While the runs span Mahalanobis distance 6.88–57 and nearest-token L2 0.562–4.6, 5 of 15 regulariser × " \
           "weight points leave that band, the furthest L2 to prior sample at w=100 (+0.500 nats from the " \
           "unregularised mean)." in cap
    cap = s07.tradeoff_caption(s07.curves(_table()), _table(), "final_f1", ("moved_l2",))
    assert cap.startswith("Final F1 (%, y) against the median L2 moved from the prior sample (embedding units)")
    assert "grey band their range (40.0–40.0)" in cap and cap.endswith("0 of 15 regulariser × weight points leave that band.")
    one = _table(reg_seeds=1)
    assert "(labelled; each point one run)" in s07.tradeoff_caption(s07.curves(one), one, "final_val_loss", ("moved_l2",))


# ----------------------------------------------------------------------------------------------- notebook
@pytest.mark.slow
def test_notebook_07_smoke(smoke_notebook):
    res = smoke_notebook("07_regularisation")
    assert smoke_notebook.planned("07_regularisation") == [c.key() for c in s07.plan("smoke")]  # what run_all was asked
    assert res["profile"] == "smoke" and res["model"] == "tiny-random-llama" and res["notebook"] == "07_regularisation"
    s = res["settings"]
    assert res["n_runs"] == len(res["runs"]) == len(s["seeds"]) + sum(len(w) for w in s["weights"].values())
    assert {r["regulariser"] for r in res["runs"]} == {"none", *s["weights"]}
    for r in res["runs"]:
        for c in ("final_val_loss", "median_mahalanobis", "median_nn_l2", "moved_l2", "median_norm"):
            assert r[c] is not None and math.isfinite(r[c]), (c, r)
        assert 0 <= r["final_f1"] <= 100 and 0 <= r["share_in_hdr"] <= 1
        if r["regulariser"] not in ("none", "weight_decay"):
            assert r["final_penalty"] is not None and r["final_penalty"] >= 0
    # the strongest L2 pull to the prior sample holds the prompt closer to it than the weakest does
    pl = sorted((r["weight"], r["moved_l2"]) for r in res["runs"] if r["regulariser"] == "prior_l2")
    assert pl[-1][1] < pl[0][1]
    assert len(res["summary"]) == len(s["weights"])
    v = [V.Verdict.from_dict(x) for x in res["verdicts"]]
    assert len(v) == 3 and all("Rule:" in x.measured for x in v)


def test_converged_plan_runs_every_regulariser_at_three_seeds():
    """An arm of one seed cannot pass the protocol's 3-seed guard: the converged design runs each
    regulariser's weight at every seed, so its verdicts can come out either way."""
    from collections import Counter
    from priorlib.compendium import chapter
    C = chapter("07_regularisation")
    s = C.settings("converged")
    assert s.arm_seeds == [0, 1, 2]
    per_arm = Counter(tuple((f, getattr(c, f)) for f in sorted({r.field for r in C.REGULARISERS.values()})
                            if getattr(c, f)) for c in C.plan("converged"))
    assert per_arm[()] == 3 and len(per_arm) == 1 + len(s.weights) and set(per_arm.values()) == {3}
    assert C.settings("converged", seeds=[0]).arm_seeds == [0]  # a caller's seeds win
    assert C.settings("cpu").arm_seeds == [0]
