"""Chapter 05 (MATH activation clusters, the interpolation prior) and the deep-prompt arms it shares with chapter 06: their logic, and the notebook run end to end with the smoke profile."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from priorlib.compendium import arms as A
from priorlib.compendium import chapter
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup
from priorlib.compendium.profiles import CHAPTERS

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
from chapter_checks import finite_columns  # noqa: E402

S5, S6 = chapter("05_math_interpolation"), chapter("06_vae")


# ------------------------------------------------------------------------------------------ logic


# ------------------------------------------------------------------------------------------ logic
def _means(shift_math: float, shift_squad: float, n: int = 30, d: int = 12, layers: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0] * n + [1] * n + [2] * n)  # web, squad, math
    x = torch.randn(layers, 3 * n, d, generator=g)
    x[:, labels == 2, : d // 2] += shift_math  # a shift spread over many dimensions, as in real activations
    x[:, labels == 1, d // 2:] += shift_squad
    return {"layers": torch.arange(layers), "domain": labels, "domains": ["web", "squad", "math"], "skip_first": x}


def test_cluster_scores_separate_only_what_is_separated():
    sc = S5.cluster_scores(_means(shift_math=4.0, shift_squad=0.0))
    assert list(sc["layer"]) == [0, 1]
    assert (sc["silhouette_math_vs_nlp"] > 0.3).all()
    assert (sc["silhouette_squad_vs_web"].abs() < 0.1).all()
    assert (sc["probe_math_vs_nlp"] > 0.95).all()
    assert (sc["probe_squad_vs_web"] < 0.8).all()
    assert np.allclose(sc["chance_math_vs_nlp"], 2 / 3) and np.allclose(sc["chance_squad_vs_web"], 0.5)
    # the one cluster measure of the book, layer by layer
    from priorlib.metrics.clusters import domain_separation
    m = _means(shift_math=4.0, shift_squad=0.0)
    want = domain_separation(m["skip_first"][1].numpy(), np.array(m["domains"])[m["domain"].numpy()])
    assert sc.iloc[1]["silhouette_math_vs_nlp"] == pytest.approx(want["silhouette_math_vs_nlp"])
    assert sc.iloc[1]["probe_squad_vs_web"] == pytest.approx(want["probe_squad_vs_web"])
    summ = S5.cluster_summary(sc, deep_layers=[1])
    assert summ["layers_math_more_separated"] == 2 and summ["n_layers"] == 2
    assert summ["silhouette_math_vs_nlp_deep"] == pytest.approx(float(sc["silhouette_math_vs_nlp"].iloc[1]))


def test_setup_grid_and_arms():
    s = setup("05_math_interpolation", "smoke", seeds=[0, 1], out_dir="/tmp/priorlib-test-s05")
    assert len(s.configs) == len(CHAPTERS["05_math_interpolation"]["smoke"]["priors"]) * 2
    assert [S6.arm_of(c) for c in s.configs[::2]] == list(CHAPTERS["05_math_interpolation"]["smoke"]["priors"])
    for c in s.configs:
        assert c.task == "math" and c.method.value == "deep" and c.deep_mode == "cut" and c.token_prompt
        assert c.prior == A.TOKEN_PRIOR  # every arm shares the token-level prompt's prior
    interp = [c for c in s.configs if S6.arm_of(c) == "interp-uniform"][0]
    assert interp.deep_prior == "interpolation" and interp.interpolate_with == "web"
    assert len({c.key() for c in s.configs}) == len(s.configs)
    s6 = setup("06_vae", "smoke", steps=8, out_dir="/tmp/priorlib-test-s06")
    assert s6.base.steps == 8 and s6.base.checkpoint_every == 2 and not s6.base.token_prompt
    assert {S6.arm_of(c) for c in s6.configs} == set(CHAPTERS["06_vae"]["smoke"]["priors"])
    with pytest.raises(ValueError, match="unknown prior arm"):
        setup("05_math_interpolation", "smoke", priors=["nope"])


def test_domain_clusters_use_the_protocols_separation():
    seps = S5.domain_clusters(_means(shift_math=4.0, shift_squad=0.0), layer=-1)
    assert seps["math_vs_nlp"].outcome is V.Outcome.AGREES
    assert seps["squad_vs_web"].outcome is not V.Outcome.AGREES


def _arm_rows(interp_loss, base_loss=1.0, n_seeds=3, plateaued=True, initial=2.0):
    out = []
    for arm, loss in (("interp-0.5", interp_loss), ("fitted-gaussian", base_loss)):
        for k in range(n_seeds):
            out.append(dict(arm=arm, seed=k, final_val_loss=loss + 0.01 * k, initial_val_loss=initial,
                            final_accuracy=5.0, plateaued=plateaued))
    return pd.DataFrame(out)


def test_usable_known_answers():
    A, C, I = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE
    assert S5.usable(_arm_rows(1.0), "interp-0.5", "fitted-gaussian")[0] is A        # the same
    assert S5.usable(_arm_rows(0.5), "interp-0.5", "fitted-gaussian")[0] is A        # better
    assert S5.usable(_arm_rows(1.5), "interp-0.5", "fitted-gaussian")[0] is C        # worse by ten margins
    assert S5.usable(_arm_rows(1.0, n_seeds=2), "interp-0.5", "fitted-gaussian")[0] is I
    assert S5.usable(_arm_rows(1.0, plateaued=False), "interp-0.5", "fitted-gaussian")[0] is I
    assert S5.usable(_arm_rows(1.0, initial=0.5), "interp-0.5", "fitted-gaussian")[0] is C  # the loss rose
    # runs at three learning rates with one seed each are not three seeds: compared per rate, each has one
    one_seed = pd.concat([_arm_rows(1.0, n_seeds=1).assign(lr=lr) for lr in (5e-4, 1e-3, 5e-3)], ignore_index=True)
    outcome, reason = S5.usable(one_seed, "interp-0.5", "fitted-gaussian")
    assert outcome is I and reason.count("at lr") == 3 and "at lr 0.0005" in reason
    three = pd.concat([_arm_rows(1.0).assign(lr=lr) for lr in (1e-3, 5e-3)], ignore_index=True)
    assert S5.usable(three, "interp-0.5", "fitted-gaussian")[0] is A
    worse_at_one = pd.concat([_arm_rows(1.0).assign(lr=1e-3), _arm_rows(1.5).assign(lr=5e-3)], ignore_index=True)
    assert S5.usable(worse_at_one, "interp-0.5", "fitted-gaussian")[0] is C


def test_same_as_compares_within_each_learning_rate():
    from priorlib.compendium.arms import same_as
    one_seed = pd.concat([_arm_rows(1.0, n_seeds=1).assign(lr=lr) for lr in (5e-4, 1e-3, 5e-3)], ignore_index=True)
    t = same_as(one_seed, "interp-0.5", "fitted-gaussian")
    assert t.outcome is V.Outcome.INCONCLUSIVE and t.reason.startswith("lr 0.0005: inconclusive")
    assert same_as(_arm_rows(1.0), "interp-0.5", "fitted-gaussian").outcome is V.Outcome.AGREES  # no lr column


def test_verdict_05_rules():
    summ = {"silhouette_math_vs_nlp_all": 0.2, "silhouette_math_vs_nlp_deep": 0.4, "silhouette_squad_vs_web_all": 0.1,
            "probe_math_vs_nlp_all": 1.0, "probe_squad_vs_web_all": 0.9, "layers_math_more_separated": 30,
            "n_layers": 30}
    rng = np.random.default_rng(0)
    web, squad = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    apart = {"math_vs_nlp": S5.decide.cluster(web + 6.0, np.vstack([web, squad]), seed=0),
             "squad_vs_web": S5.decide.cluster(squad, web, seed=0)}
    rows, numbers = S5.verdict(summ, {"all tokens": summ}, _arm_rows(1.0), seps=apart)
    assert rows[0].outcome is V.Outcome.AGREES and rows[2].outcome is V.Outcome.AGREES
    assert rows[1].outcome is not V.Outcome.CONTRADICTS  # SQuAD and web drawn from one distribution
    assert [v.claim_id for v in rows] == ["math-own-cluster", "squad-near-web", "interpolation-usable",
                                          "math-sharpens-difference"]
    assert rows[3].outcome is V.Outcome.INCONCLUSIVE and numbers["math_sharpening"] is None  # not measured
    merged = {"math_vs_nlp": S5.decide.cluster(web, squad, seed=1),
              "squad_vs_web": S5.decide.cluster(squad + 6.0, web, seed=0)}
    rows, _ = S5.verdict(summ, {}, _arm_rows(1.5), seps=merged)
    assert [v.outcome for v in rows][1:3] == [V.Outcome.CONTRADICTS] * 2 and rows[0].outcome is not V.Outcome.AGREES
    assert numbers["final_val_loss"]["interp-0.5"] == pytest.approx((1.01, 0.01))
    assert numbers["separation"]["math_vs_nlp"]["outcome"] == "agrees"


def _sharpening_groups(case: str, seed: int = 0, n: int = 150, d: int = 60):
    """SQuAD, web and MATH rows where MATH turns the picture onto the SQuAD/web direction ("reveal") or away
    from it ("hide")."""
    rng = np.random.default_rng(seed)
    web, squad, math = (rng.normal(size=(n, d)) for _ in range(3))
    if case == "reveal":   # a small shift in 12 of 60 dims: below the noise PCs of SQuAD + web alone
        squad[:, :12] += 0.45
        math[:, :12] += 10.0           # far along the same block: PC1 of the three groups is the shift
    else:                  # a large shift: PC1 of SQuAD + web alone; MATH's two sub-clusters take both PCs
        squad[:, :8] += 1.5
        math[:, :8] += 0.75
        math[: n // 2, 8:16] += 6.0
        math[n // 2:, 16:24] += 6.0
    return squad, web, math


@pytest.mark.parametrize("case, expected", [("reveal", V.Outcome.AGREES), ("hide", V.Outcome.CONTRADICTS)])
def test_projection_sharpening_known_answers(case, expected):
    r = S5.projection_sharpening(*_sharpening_groups(case, seed=2), seed=0, n_boot=100)
    assert r["outcome"] is expected, r["reason"]
    assert r["estimate"] == pytest.approx(r["with"] - r["without"])
    assert r["ci"][0] <= r["ci"][1] and r["n"] == [150, 150, 150]
    if case == "hide":
        assert r["without"] > 0.3 > r["with"]        # visible without MATH, hidden with it


def test_sharpening_decision_rule_and_verdict():
    draws = {"without": 0.1, "with": 0.2, "n": np.array([5, 5, 5])}
    A, C, I = V.Outcome.AGREES, V.Outcome.CONTRADICTS, V.Outcome.INCONCLUSIVE
    assert S5.sharpening_decision({**draws, "diffs": np.linspace(0.01, 0.2, 50)})["outcome"] is A
    assert S5.sharpening_decision({**draws, "diffs": -np.linspace(0.01, 0.2, 50)})["outcome"] is C
    assert S5.sharpening_decision({**draws, "diffs": np.linspace(-0.1, 0.2, 50)})["outcome"] is I
    with pytest.raises(ValueError, match=">= 3 rows"):
        S5.projection_sharpening(np.zeros((2, 4)), np.zeros((5, 4)), np.zeros((5, 4)))
    # the chapter's wrapper on per-text means (plumbing: layer, rows kept, none massive)
    rng = np.random.default_rng(1)
    web, squad, math = rng.normal(size=(60, 40)), rng.normal(size=(60, 40)) + 0.3, rng.normal(size=(60, 40)) + 1.0
    means = {"layers": torch.arange(1), "domain": torch.tensor([0] * 60 + [1] * 60 + [2] * 60),
             "domains": ["web", "squad", "math"], "skip_first": torch.tensor(np.vstack([web, squad, math]))[None]}
    sharp = S5.math_sharpening(means, layer=-1, n_boot=20)
    assert sharp["layer"] == 0 and sharp["n"] == [60, 60, 60] and sharp["dropped"] == 0
    summ = {"silhouette_math_vs_nlp_all": 0.2, "silhouette_squad_vs_web_all": 0.1, "probe_math_vs_nlp_all": 1.0,
            "probe_squad_vs_web_all": 0.9, "layers_math_more_separated": 1, "n_layers": 1}
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    seps = {"math_vs_nlp": S5.decide.cluster(x, y, seed=0), "squad_vs_web": S5.decide.cluster(x, y, seed=0)}
    rows, numbers = S5.verdict(summ, {}, _arm_rows(1.0), seps=seps, sharpen={**sharp, "outcome": C})
    row = next(v for v in rows if v.claim_id == "math-sharpens-difference")
    assert row.outcome is C and "without and with the MATH rows" in row.measured
    assert numbers["math_sharpening"]["outcome"] == "contradicts"


# ------------------------------------------------------------------------------------------- captions
def _scores():
    """Four layers with known medians: MATH vs NLP 0.45 (0.65 over layers 2-3), SQuAD vs web 0.10."""
    return pd.DataFrame({"layer": [0, 1, 2, 3], "silhouette_math_vs_nlp": [0.1, 0.3, 0.6, 0.7],
                         "silhouette_squad_vs_web": [0.0, 0.1, 0.1, 0.8], "probe_math_vs_nlp": [0.9] * 4,
                         "probe_squad_vs_web": [0.6] * 4})


def test_cluster_and_scatter_captions_known_answers():
    cap = S5.cluster_caption(_scores(), [2, 3], 200)
    assert "(200 texts per domain" in cap and "grey bands: the deep-prompt layers 2, 3." in cap
    assert ("median silhouette of 0.45 over the 4 layers (0.65 over the deep-prompt layers; a weak structure in "
            "Kaufman & Rousseeuw's terms) against 0.10 for SQuAD against web text, and is the better-separated "
            "pair at 3 of 4 layers.") in cap
    means = {"domains": ["web", "squad", "math"], "domain": torch.tensor([0] * 3 + [1] * 2 + [2] * 4)}
    cap = S5.scatter_caption(means, _scores(), [0, 3])
    assert cap.startswith("Per-text mean activations of 4 MATH (orange), 2 SQuAD (green), 3 web-text (blue) texts")
    assert "at the inputs of layers 0, 3 (one panel each)" in cap
    assert cap.endswith("MATH against SQuAD + web / SQuAD against web: layer 0 0.10 / 0.00; layer 3 0.70 / 0.80.")


def _caption_rows(lrs=(0.01,)):
    """Three seeds per arm: accuracy 12.0 ± 2.0 / 8.0 ± 0.0 / 2.0 ± 1.0 %, val loss 0.410 ± 0.010 / 0.440 / 1.000."""
    vals = {"interp-0.5": ([10, 12, 14], [0.40, 0.41, 0.42]), "fitted-gaussian": ([8, 8, 8], [0.44] * 3),
            "xavier": ([1, 2, 3], [1.0] * 3)}
    return pd.DataFrame([dict(arm=a, lr=lr, seed=k, final_accuracy=float(acc[k]), final_val_loss=loss[k])
                         for a, (acc, loss) in vals.items() for lr in lrs for k in range(3)])


def test_arm_bar_captions_known_answers():
    cap = S5.accuracy_caption(_caption_rows(), 40)
    assert "after 40 steps per prior arm: bars are the mean and sd over 3 seeds, dots single runs." in cap
    assert cap.endswith("Per arm: fitted-gaussian 8.0 ± 0.0%; interp-0.5 12.0 ± 2.0%; xavier 2.0 ± 1.0%; "
                        "highest: interp-0.5, +4.0 points against fitted-gaussian.")
    cap = S5.val_loss_caption(_caption_rows(), 40)
    assert cap.endswith("Lowest: interp-0.5 0.410 ± 0.010; against fitted-gaussian's 0.440: interp-0.5 -0.030, "
                        "xavier +0.560.")
    assert "over 3 seeds × 2 learning rates (pooled)" in S5.val_loss_caption(_caption_rows((0.01, 0.1)), 40)
    one = _caption_rows()[lambda d: d.seed == 0].assign(final_accuracy=0.0)  # one run per arm, all at 0%
    assert S5.accuracy_caption(one, 4).endswith("bars are the one run of each arm (1 seed, no sd). Per arm: "
                                                "fitted-gaussian 0.0%; interp-0.5 0.0%; xavier 0.0%; every arm "
                                                "scores 0.0%.")
    assert "Lowest: interp-0.5 0.400; against" in S5.val_loss_caption(one, 4)
    two = one.assign(final_accuracy=[5.0, 5.0, 1.0])
    assert S5.accuracy_caption(two, 4).endswith("highest: fitted-gaussian, interp-0.5 (tied).")


def test_training_loss_and_placement_captions_known_answers(tmp_path):
    configs = setup("05_math_interpolation", "smoke", seeds=[0, 1], out_dir=tmp_path).configs
    arm = S5.arm_of(configs[0])

    class Run:
        def __init__(self, config, losses, plateau):
            self.config, self.metrics = config, {"plateaued": plateau}
            self._h = pd.DataFrame({"step": range(len(losses)), "loss": losses})

        def history(self):
            return self._h
    runs = [Run(configs[0], [3.0] * 5 + [1.0] * 5, True), Run(configs[1], [3.0] * 5 + [2.0] * 5, False)]
    cap = S5.training_loss_caption(runs)
    assert "one curve per run (2 runs" in cap
    assert f"mean per arm: {arm} 1.500; 1 of 2 runs stopped at the step cap" in cap
    place = pd.DataFrame([dict(arm=a, lr=0.01, seed=k, when=w, maha_math=m + k, maha_web=m * 2)
                          for a, m in (("interp-0.5", 10.0), ("xavier", 300.0)) for k in range(2)
                          for w in ("sampled", "trained")])
    yard = pd.DataFrame([{"rows of": "math", "maha_math": 5.0, "maha_web": 40.0},
                         {"rows of": "web", "maha_math": 60.0, "maha_web": 6.0}])
    cap = S5.placement_caption(place, yard, 3)
    assert "deep block at the input of layer 3" in cap and "one arrow per run (4 runs)" in cap
    assert cap.endswith("Trained, MATH / web distance (mean over runs): interp-0.5 10.5 / 20; xavier 300 / 600; "
                        "against MATH rows 5 / 40; web-text rows 60 / 6.")


# ------------------------------------------------------------------------------------ notebooks
@pytest.mark.slow
def test_notebook_05_smoke(smoke_notebook):
    res = smoke_notebook("05_math_interpolation")
    assert smoke_notebook.planned("05_math_interpolation") == [c.key() for c in S5.plan("smoke")]  # what run_all was asked
    assert res["notebook"] == "05_math_interpolation" and res["profile"] == "smoke"
    for key in ("clusters", "cluster_summary", "cluster_controls", "runs", "quality", "placement", "yardstick",
                "verdicts", "wall_s", "web_source"):
        assert key in res, key
    assert "stand-in for C4" in res["web_source"]
    n_layers = len(res["clusters"])
    assert n_layers == 4 and [r["layer"] for r in res["clusters"]] == list(range(n_layers))
    finite_columns(res["clusters"], ["silhouette_math_vs_nlp", "silhouette_squad_vs_web", "probe_math_vs_nlp"])
    assert all(-1 <= r["silhouette_math_vs_nlp"] <= 1 and 0 <= r["probe_squad_vs_web"] <= 1 for r in res["clusters"])
    arms = {r["arm"] for r in res["runs"]}
    assert arms == set(CHAPTERS["05_math_interpolation"]["smoke"]["priors"])
    finite_columns(res["runs"], ["initial_val_loss", "final_val_loss", "final_accuracy"])
    assert len(res["placement"]) == 2 * len(res["runs"])
    finite_columns(res["placement"], ["maha_math", "maha_web", "share_closer_to_math", "moved_l2"])
    # consistency: the quality table's means are the runs' means
    for q in res["quality"]:
        vals = [r["final_val_loss"] for r in res["runs"] if r["arm"] == q["arm"]]
        assert float(q["final_val_loss"].split(" ± ")[0]) == pytest.approx(np.mean(vals), abs=1e-3)
    assert len(res["verdicts"]) == 4
    sharp = V.Verdict.from_dict(res["verdicts"][3])
    assert sharp.claim_id == "math-sharpens-difference" and "bootstrap CI" in sharp.measured
    assert [V.Verdict.from_dict(v).claim for v in res["verdicts"]][0] == "MATH activations form their own cluster"


def test_map_caption_points_to_the_exact_distances():
    from types import SimpleNamespace as NS
    proj = NS(description="PCA of MATH + web activations", explained=np.array([0.3, 0.2, 0.1]))
    place = pd.DataFrame([dict(arm=a, seed=k, when=w, share_closer_to_math=v)
                          for a, v in (("interp-0.5", 0.8), ("xavier", 0.1)) for k in range(2)
                          for w in ("sampled", "trained")])
    txt = S5.map_caption(proj, place, 2)
    assert "the two axes hold 50.0% of the standardised variance" in txt
    assert "is not its Mahalanobis distance, which the figure above gives exactly" in txt
    assert txt.endswith(f"{S5.ARM_TITLES.get('interp-0.5', 'interp-0.5')} 80%; {S5.ARM_TITLES.get('xavier', 'xavier')} 10%.")


def test_quality_sentence_says_what_the_mean_pools():
    df = pd.concat([_arm_rows(1.0).assign(lr=lr, initial_accuracy=1.0) for lr in (1e-3, 5e-3)], ignore_index=True)
    txt = S5.quality_sentence(df)
    assert "over 6 runs: 3 seed(s) × 2 learning rates)" in txt and "Initial accuracy (untrained prompt): " in txt
    one = _arm_rows(0.5).assign(lr=5e-2, initial_accuracy=0.0)
    assert "Lowest final validation loss: **interp-0.5** (0.510 ± 0.010 nats/token over 3 seeds)" in S5.quality_sentence(one)
