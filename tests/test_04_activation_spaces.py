"""Chapter 04 (activation spaces, deep prompts): its run keys, its picture rows, and the notebook run end to end with the smoke profile."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from priorlib.compendium import runs as sec
from priorlib.compendium import chapter
from priorlib.compendium.setup import setup

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from chapter_checks import check_run_results  # noqa: E402
from priorlib.compendium import verdicts as V  # noqa: E402

OUTCOMES = {o.value for o in V.Outcome}

C02, C03, C04 = (chapter(n) for n in ("02_lr_priors", "03_exclusion", "04_activation_spaces"))


# ----------------------------------------------------------------------------------------------- settings


def test_notebook_04_token_baseline_shares_run_keys_with_notebook_02():
    """The soft/fitted-Gaussian baseline of 04 is the same run as 02's at lr 5e-3 (reused, not retrained)."""
    from priorlib.compendium import experiments as ex
    s2, s4 = setup("02_lr_priors", "cpu"), setup("04_activation_spaces", "cpu")
    keys2 = {c.key() for c in sec.lr_seed_grid(s2, s2.base())}
    keys4 = {c.key() for c in ex.grid(s4.base(), variant=[dict(prior="fitted-gaussian", method="soft",
                                                              soft_space="tokens")], lr=[5e-3], seed=s4.seeds)}
    assert keys4 <= keys2


def test_robust_rows_drops_the_largest_norms():
    x = torch.ones(100, 4)
    x[0] *= 1000
    rows, info = C04.robust_rows(x, q=0.98)
    assert len(rows) == 99 and info["dropped"] == 1 and info["max_over_median_norm"] == pytest.approx(1000)


def _rows(*, cut_carry_gap=0.0, xavier_steps=20.0, n_seeds=3, plateaued=True, token_gap=0.0):
    import pandas as pd
    out = []
    for variant, prior, steps, loss in (("deep cut", "fitted-gaussian", 10.0, 2.0), ("deep cut", "xavier", xavier_steps, 2.1),
                                        ("deep carry", "fitted-gaussian", 10.0, 2.0 + cut_carry_gap),
                                        ("soft (tokens)", "fitted-gaussian", 10.0, 2.3),
                                        ("token cut", "fitted-gaussian", 10.0, 2.3 + token_gap)):
        for k in range(n_seeds):
            out.append(dict(variant=variant, prior=prior, seed=k, steps_to_target=steps + k, val_steps_to_target=steps,
                            final_val_loss=loss + 0.01 * k, final_f1=40.0, plateaued=plateaued))
    return pd.DataFrame(out)


def test_04_decisions_known_answers():
    A, C, I = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE
    assert C04.cut_vs_carry(_rows()).outcome is A
    assert C04.cut_vs_carry(_rows(cut_carry_gap=0.1)).outcome is C            # two margins apart
    assert C04.cut_vs_carry(_rows(n_seeds=2)).outcome is I
    assert C04.cut_vs_carry(_rows(plateaued=False)).outcome is I
    # §3.2's own setting: the token-level prompt cut after layer 0 against the plain soft prompt
    assert C04.token_cut_vs_carry(_rows()).outcome is A
    assert C04.token_cut_vs_carry(_rows(token_gap=-0.1)).outcome is C          # cut better by two margins
    assert C04.token_cut_vs_carry(_rows(token_gap=0.04)).outcome is I          # the CI reaches past the margin
    assert C04.token_cut_vs_carry(_rows(n_seeds=2)).outcome is I
    assert C04.token_cut_vs_carry(_rows(plateaued=False)).outcome is I
    assert C04.token_cut_vs_carry(_rows(cut_carry_gap=0.1)).outcome is A      # the deep arms do not enter it
    later, measure = C04.converges_later(_rows())
    assert later.outcome is A and measure == "steps_to_target"
    assert C04.converges_later(_rows(xavier_steps=5.0))[0].outcome is C
    assert C04.converges_later(_rows(n_seeds=2))[0].outcome is I


def test_verdicts_04_on_synthetic_numbers():
    import numpy as np
    import pandas as pd
    from priorlib.config import TrainConfig
    rng = np.random.default_rng(0)
    sep = {"deep": C04.cluster_separation(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 5.0)}
    place = pd.DataFrame([dict(when="trained", moved_l2=0.1)] * 3)
    cfgs = [TrainConfig(lr=0.5, steps=20, warmup_steps=2)]
    out, num = C04.verdicts(sep, _rows(), place, act_gap=1.0, configs=cfgs, dim=64)
    # web text and SQuAD separated: the paper's "SQuAD does not diverge far from C4" is contradicted
    assert [v.outcome for v in out] == [V.Outcome.CONTRADICTS] + [V.Outcome.AGREES] * 4 + [V.Outcome.INCONCLUSIVE] * 3
    assert [v.claim_id for v in out] == ["squad-near-web", "diverged-inits-slower", "cut-carry-same-deep",
                                         "cut-carry-same", "deep-prompts-stay", "fit-misses-activations", "squad-gaussian-same-quality",
                                         "squad-activations-concentrated"]
    one = {"deep": C04.cluster_separation(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)))}
    assert C04.verdicts(one, _rows(), place, act_gap=1.0, configs=cfgs, dim=64)[0][0].outcome is not V.Outcome.CONTRADICTS
    slow = [TrainConfig(lr=1e-4, steps=20, warmup_steps=2)]
    out, num = C04.verdicts(sep, _rows(), place, act_gap=1.0, configs=slow, dim=64)
    assert out[4].outcome is V.Outcome.NOT_TESTABLE and num["movement_bound"] < 1.0
    assert num["token_cut_vs_carry_val_loss"]["outcome"] == "agrees"
    assert "F1 +0.0 points, 90% CI [+0.0, +0.0]: agrees (margin ±3)" in out[3].measured  # F1 equal in every row


def test_the_token_cut_arm_is_the_soft_baseline_but_cut_after_layer_0():
    """§3.2's "cut" arm: one block on layer 0, no token-level prompt, the soft prompt's own learning rate,
    and the same prior, learning rate and seeds as the plain soft prompt it is compared with."""
    plan = C04.plan("converged")
    cut = [c for c in plan if sec.variant(c) == "token cut"]
    carry = [c for c in plan if sec.variant(c) == "soft (tokens)" and c.prior == "fitted-gaussian"]
    assert len(cut) >= 3 and all(c.deep_layers == (0,) and not c.token_prompt and c.deep_mode == "cut"
                                 and c.deep_lr.value == "same" and c.method.value == "deep" for c in cut)
    assert [(c.prior, c.lr, c.seed) for c in cut] == [(c.prior, c.lr, c.seed) for c in carry]
    assert plan[-len(cut):] == cut  # last in the plan: the bank's earlier runs keep their order
    from priorlib.runstore import Run
    deep = C04.deep_runs([Run(Path("."), c) for c in plan])
    assert {sec.variant(r.config) for r in deep} == {"deep cut", "deep carry"}


@pytest.mark.slow
def test_notebook_04_smoke(smoke_notebook):
    res = smoke_notebook("04_activation_spaces")
    assert smoke_notebook.planned("04_activation_spaces") == [c.key() for c in C04.plan("smoke")]  # what run_all was asked
    check_run_results(res, "04_activation_spaces", 8)
    from priorlib.data import web_source_name
    assert res["web_source"] == web_source_name()
    variants = {q["variant"] for q in res["quality"]}
    assert variants == {"soft (tokens)", "soft (layers.0.resid_post)", "deep cut", "deep carry", "token cut"}
    assert res["numbers"]["token_cut_vs_carry_val_loss"]["outcome"] in OUTCOMES
    sep = res["numbers"]["separation"]
    assert len(sep) == 2 and all(-1 <= v["silhouette"] <= 1 and v["outcome"] in OUTCOMES for v in sep.values())
    cut = [r for r in res["runs"] if r["variant"] == "deep cut"]
    carry = [r for r in res["runs"] if r["variant"] == "deep carry"]
    assert sorted(r["seed"] for r in carry) == sorted(r["seed"] for r in cut if r["prior"] == "fitted-gaussian")
    assert len(res["deep_placement"]) == 2 * (len(cut) + len(carry))
    conc = res["numbers"]["deep_block_concentration"]  # §4.6, from the fitted-Gaussian 'cut' runs' last block
    assert conc["n_runs"] == len([r for r in cut if r["prior"] == "fitted-gaussian"]) and conc["ratio"] > 0
    assert conc["ci"][0] <= conc["ci"][1] and conc["outcome"] in OUTCOMES
    cover = res["numbers"]["fit_coverage"]
    assert len(cover) == 2 and all(c["n_fit"] > 0 and c["n_held_out"] > 0 and 0 <= c["share_inside"] <= 1
                                   for c in cover.values())


def test_deep_lr_scale_is_the_largest_recorded_multiplier():
    from types import SimpleNamespace
    runs = [SimpleNamespace(metrics={"deep_lr_scale": {"27": 171.5, "29": 227.0}}),
            SimpleNamespace(metrics={"deep_lr_scale": {"27": 180.0}}), SimpleNamespace(metrics={})]
    assert C04.deep_lr_scale(runs) == 227.0
    assert C04.deep_lr_scale([SimpleNamespace(metrics={})]) == 1.0 and C04.deep_lr_scale([]) == 1.0


def test_clouds_caption_gives_the_map_share_and_the_full_dimensional_separation():
    from types import SimpleNamespace
    import numpy as np
    from priorlib.protocol import Outcome
    sep = SimpleNamespace(estimate=0.0061, ci_low=0.005, ci_high=0.007, null_upper=0.001, outcome=Outcome.CONTRADICTS)
    proj = SimpleNamespace(explained=np.array([0.2, 0.1, 0.05]))
    cap = chapter("04_activation_spaces").clouds_caption("layers.0.resid_post", sep, proj, 1200, 3400, 34)
    assert "hold 30.0% of their variance" in cap and "1,200 rows" in cap and "the 34 SQuAD rows" in cap
    assert "silhouette of the two is 0.006 (95% CI [0.005, 0.007])" in cap and "0.001: contradicts" in cap


def test_split_by_source_keeps_a_paragraphs_questions_on_one_side():
    C = chapter("04_activation_spaces")
    texts = ["A\nQuestion: 1", "B\nQuestion: 2", "A\nQuestion: 3", "C", "B\nQuestion: 4", "D"]
    fit, held = C.split_by_source(texts)
    assert fit == ["A\nQuestion: 1", "A\nQuestion: 3", "B\nQuestion: 2", "B\nQuestion: 4"] and held == ["C", "D"]
    assert not {C.source_of(t) for t in fit} & {C.source_of(t) for t in held}
    assert sorted(fit + held) == sorted(texts)
    assert C.split_by_source(["x", "y", "z", "w"]) == (["x", "y"], ["z", "w"])  # no shared source: halves
    with pytest.raises(ValueError, match="1 source"):
        C.split_by_source(["A\nQuestion: 1", "A\nQuestion: 2"])


def _deep_run(root, prior, seed, losses, curve):
    """A deep "cut" run on disk with known training losses (one per step) and held-out curve ``[(step, loss)]``."""
    import json
    from priorlib.runstore import Run
    base = setup("04_activation_spaces", "smoke").base()
    cfg = type(base).from_dict({**base.to_dict(), "method": "deep", "deep_mode": "cut", "prior": prior, "seed": seed})
    d = root / f"{prior}-{seed}"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({"initial": {"val_loss": curve[0][1]}, "final": {"val_loss": curve[-1][1]},
                                                "median_s_per_step": 0.1, "plateaued": True}))
    (d / "history.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(losses)))
    (d / "evals.jsonl").write_text("".join(json.dumps({"step": s, "plateau_loss": v}) + "\n" for s, v in curve))
    return Run(d, cfg)


def test_speed_rows_take_their_targets_from_the_two_arms(tmp_path):
    """A soft run that ends far above both deep arms would set a chapter-wide target they reach at once; the
    speed rows use the two arms' own worst final loss, so the slower arm's extra steps show."""
    C = chapter("04_activation_spaces")
    fast = [_deep_run(tmp_path, "fitted-gaussian", k, [3.0] * 2 + [1.0] * 18, [(0, 3.0), (5, 1.0), (20, 1.0)])
            for k in range(3)]
    slow = [_deep_run(tmp_path, "xavier", k, [3.0] * 10 + [1.0] * 10, [(0, 3.0), (5, 2.0), (10, 1.0), (20, 1.0)])
            for k in range(3)]
    rows = C.speed_rows(fast + slow)
    steps = rows.groupby("prior")["steps_to_target"].mean()
    assert steps["fitted-gaussian"] == 7 and steps["xavier"] == 15  # the 5-step mean first reaches 1.0
    assert rows.attrs["train_target"] == 1.0
    assert set(C.speed_rows(fast)["prior"]) == {"fitted-gaussian"} and C.speed_rows([]).empty
    assert C.speed_sentence(rows) == ("Against the deep 'cut' runs' own training-loss target, 1.000 nats/token "
                                      "(the worst final loss among them), deep 'cut' needed on average "
                                      "7.0 steps from fitted-gaussian, 15.0 steps from xavier to reach it.")
    assert "no speed comparison" in C.speed_sentence(C.speed_rows([]))
