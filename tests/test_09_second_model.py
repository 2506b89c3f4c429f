"""Notebook 09 (the key claims on a second model): its logic, and a smoke run on two tiny random models
(a Llama and a Gemma-3, so the Gemma code paths run in CI)."""
import math

import numpy as np
import pandas as pd
import pytest

from priorlib.compendium import chapter
from priorlib.compendium import verdicts as V
from priorlib.compendium.setup import setup
from priorlib.compendium.profiles import CHAPTERS
s09 = chapter("09_second_model")


def test_setup_validates_before_compute():
    su = setup("09_second_model", "smoke", out_dir="/tmp/priorlib-test-s09")
    assert su.models == ("tiny-random-llama", "tiny-random-gemma3")
    assert setup("09_second_model", "cpu", out_dir="/tmp/priorlib-test-s09").models == ("smollm2-135m", "gemma3-270m")
    for m in su.models:  # both models get notebook 02's grid at one learning rate
        S = su.settings[m]
        assert S.learning_rates == [CHAPTERS["09_second_model"]["smoke"]["learning_rate"]] and S.model == m
    with pytest.raises(ValueError, match="two different"):
        setup("09_second_model", "smoke", models=["tiny-random-llama", "tiny-random-llama"])
    with pytest.raises(ValueError, match="unknown model"):
        setup("09_second_model", "smoke", models=["tiny-random-llama", "nope"])
    with pytest.raises(ValueError, match="unknown profile"):
        setup("09_second_model", "laptop")


def test_main_model_configs_are_notebook_02s():
    """On the main model the cpu grid is a subset of notebook 02's, so the runs come from the run store."""
    from priorlib.compendium import runs as s02
    su = setup("09_second_model", "cpu", out_dir="/tmp/priorlib-test-s09")
    S2 = setup("02_lr_priors", "cpu")
    keys02 = {c.key() for c in s02.lr_seed_grid(S2, S2.base())}
    S9 = su.settings["smollm2-135m"]
    keys09 = {c.key() for c in s02.lr_seed_grid(S9, S9.base())}
    assert len(keys09) == 8 and keys09 <= keys02


def _pos(model, spread_between, spread_within, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for k, prior in enumerate(["a", "b", "c"]):
        for s in range(3):
            v = 1 + spread_between * k + spread_within * rng.standard_normal()
            rows.append({"model": model, "prior": prior, "seed": s, "when": "trained", "nn_l2_in_gaps": v})
    return rows


def test_prior_effect_ratio_separates_prior_from_seed_effects():
    pos = pd.DataFrame(_pos("decided by prior", 1.0, 0.01) + _pos("decided by seed", 0.0, 1.0))
    r = s09.prior_effect_ratio(pos)
    assert r["decided by prior"] > 30
    assert r["decided by seed"] < 3


IDS = ("prior-decides-posterior", "prompts-stay-near-prior", "quality-independent-of-prior", "task-clusters")


def _result(title, agrees):
    return {"title": title, "verdicts": [V.Verdict(c, f"measured {i}", V.outcome_of(a), claim_id=k)
                                         for i, (c, a, k) in enumerate(zip(s09.CLAIMS, agrees, IDS))]}


def test_claim_table_and_verdict_rows():
    res = [_result("A", [True, False, True, None]), _result("B", [True, True, False, True])]
    t = s09.claim_table(res)
    assert list(t["holds on"]) == ["both", "B only", "A only", "inconclusive"]
    assert list(t["A"]) == ["measured 0 → agrees", "measured 1 → contradicts", "measured 2 → agrees",
                            "measured 3 → inconclusive"]
    rows = s09.verdicts_09(res)
    assert len(rows) == 4 and rows[0].claim == s09.CLAIMS[0] + " (on both models)"
    assert rows[0].measured == "A: measured 0 → agrees. B: measured 0 → agrees."
    assert [v.outcome.value for v in rows] == ["agrees", "contradicts", "contradicts", "inconclusive"]
    assert rows[1].by_model == {"A": V.Outcome.CONTRADICTS, "B": V.Outcome.AGREES} and rows[1].label == "B only"
    assert [v.claim_id for v in rows] == list(IDS)  # each row files under the claim of 02 or 01 it repeats
    bad = [_result("A", [True] * 4), {"title": "B", "verdicts": [V.Verdict("other claim", "x", V.Outcome.AGREES)] * 4}]
    with pytest.raises(ValueError, match="not aligned"):
        s09.claim_table(bad)


def test_quality_caption_gives_each_models_spread_of_prior_means():
    q = pd.DataFrame([{"model": m, "prior": p, "seed": s, "final_val_loss": 1 + 0.1 * k + 0.01 * s + 0.5 * (m == "B"),
                       "final_f1": 40.0 + k + s} for m in "AB" for k, p in enumerate("xyz") for s in range(3)])
    assert s09.quality_caption(q, "final_val_loss") == (
        "Final held-out SQuAD validation answer loss (nats/token, y) per prior (x), one panel per model: bars are "
        "the mean ± sd over 3 seeds, dots single seeds. The prior means run on A from 1.010 (x) to 1.210 (z), a "
        "spread of 0.200 nats; on B from 1.510 (x) to 1.710 (z), a spread of 0.200 nats (equivalence margin ±0.05 nats).")
    cap = s09.quality_caption(q[q["seed"] < 2], "final_f1")
    assert cap.startswith("Final held-out SQuAD F1 (%, y)") and "over 2 seeds" in cap
    assert "on A from 40.5 (x) to 42.5 (z), a spread of 2.0 points" in cap and "(equivalence margin ±3 points)" in cap
    one = q[q["seed"] == 0].assign(final_f1=0.0)
    cap = s09.quality_caption(one, "final_f1")
    assert "bars are the single seed's value (one seed: no sd)" in cap and "run on A all at 0.0; on B all at 0.0 (" in cap


def test_clusters_caption_reads_the_last_layer_and_the_share_of_depths():
    cl = pd.DataFrame([{"model": m, "depth": d, "relative_depth": d / 4, "silhouette_math_vs_nlp": 0.1 * d + 0.06 * (m == "B"),
                        "silhouette_squad_vs_web": 0.15} for m in "AB" for d in range(5)])
    cap = s09.clusters_caption(cl)
    assert "against depth as a share of each model's layers (x: 0 = token embeddings, 1 = last layer)" in cap
    # A: 0.4 at the last of 5 depths, above 0.15 at depths 2-4 (60%); B: 0.46, above at depths 1-4 (80%)
    assert cap.endswith("At the last layer: A MATH vs NLP 0.40 and SQuAD vs web 0.15, MATH the more separated pair "
                        "at 60% of its 5 depths; B MATH vs NLP 0.46 and SQuAD vs web 0.15, MATH the more separated "
                        "pair at 80% of its 5 depths.")


@pytest.mark.slow
def test_notebook_09_smoke(smoke_notebook):
    res = smoke_notebook("09_second_model")
    assert smoke_notebook.planned("09_second_model") == [c.key() for c in s09.plan("smoke")]  # what run_all was asked
    assert res["notebook"] == "09_second_model" and res["settings"]["models"] == ["tiny-random-llama", "tiny-random-gemma3"]
    gem = res["per_model"]["tiny-random-gemma3"]
    assert gem["facts"]["embed_scale"] == pytest.approx(8.0) and gem["facts"]["bos"] is True
    assert gem["facts"]["median_row_norm_prompt_space"] == pytest.approx(8 * gem["facts"]["median_row_norm_weight"],
                                                                          rel=1e-3)
    llama = res["per_model"]["tiny-random-llama"]
    assert llama["facts"]["embed_scale"] == 1.0 and llama["facts"]["bos"] is False
    for m in res["per_model"].values():
        assert {r["prior"] for r in m["runs"]} == set(res["settings"]["priors"])
        assert all(r["final_val_loss"] is not None and math.isfinite(r["final_val_loss"]) for r in m["runs"])
        assert len(m["placement"]) == 2 * len(m["runs"])
        assert len(m["verdicts"]) == 6  # chapter 02's five, then the task clusters
    assert len(res["claim_table"]) == len(res["verdicts"]) == 6
    verdicts = [V.Verdict.from_dict(v) for v in res["verdicts"]]
    titles = ["a 4-layer random Llama (d=64)", "a 4-layer random Gemma-3 (d=64)"]
    assert all(list(v.by_model) == titles for v in verdicts)
    assert [v.label for v in verdicts] == [row["holds on"] for row in res["claim_table"]]
    assert {v.label for v in verdicts} <= {"both", "neither", *(o.value for o in V.Outcome if not o.is_evidence), *(f"{t} only" for t in titles)}


def test_position_answer_reports_each_models_verdict_not_the_pooled_rho():
    """The answer under the position figure is the verdict (notebook 02's rule), never the descriptive ρ over
    all runs: a model whose rates could not move a gap reads "holds by construction" whatever ρ is."""
    v = lambda o, why: V.Verdict("The prior decides where trained soft prompts end up", why, o,  # noqa: E731
                                 claim_id="prior-decides-posterior")
    results = [{"title": "SmolLM2", "verdicts": [v(V.Outcome.INCONCLUSIVE, "pooled ρ 0.3, CI [-0.3, 0.8]")]},
               {"title": "Gemma", "verdicts": [v(V.Outcome.HOLDS_BY_CONSTRUCTION, "could not move a token gap")]}]
    pos = pd.DataFrame([dict(model=m, prior=p, seed=k, when="trained", nn_l2_in_gaps=base + 0.01 * k)
                        for m in ("SmolLM2", "Gemma") for p, base in (("a", 1.0), ("b", 2.0)) for k in range(3)])
    txt = s09.position_answer(results, pos)
    assert "on SmolLM2, **inconclusive** (pooled ρ 0.3, CI [-0.3, 0.8])" in txt
    assert "on Gemma, **holds by construction** (could not move a token gap)" in txt
    assert "the spread between priors is 71× the spread between seeds" in txt  # sd(1, 2) / sd(0, .01, .02)
