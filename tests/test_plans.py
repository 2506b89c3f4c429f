"""Every chapter's ``plan(profile)``: the configs its notebook asks ``run_all`` to train, known without executing
the notebook, loading a model or training. That the smoke plans equal what the notebooks really ask for is
checked where the smoke notebooks run (``smoke_notebook.planned`` in ``tests/test_0N_*.py``); here, fast: the
plans of the other profiles (cpu, paper, ...) build, the notebooks hand ``run_all`` only the chapter modules'
configs, and chapter 08's plan with and without its bank."""
from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import torch

from priorlib.compendium import chapter, chapter_names, evidence, profiles
from priorlib.compendium.setup import setup
from priorlib.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]

TRAINING = [n for n in chapter_names() if n[:2] != "01"]
FULL_PROFILES = [p for p in profiles.NAMES if p != "smoke"]  # the smoke plans are checked against the notebooks


@pytest.fixture(scope="module")
def plans():
    return {p: evidence.plan_all(p) for p in FULL_PROFILES}


def test_every_chapter_has_a_plan_and_plan_all_names_them_in_book_order(plans):
    assert chapter_names()[0] == "01_proof_of_concept" and len(TRAINING) == 8
    for profile, by in plans.items():
        assert list(by) == chapter_names(), profile
        assert by["01_proof_of_concept"] == []  # the atlas trains nothing
        for name in TRAINING:
            assert [c.key() for c in by[name]] == [c.key() for c in chapter(name).plan(profile)]


@pytest.mark.parametrize("profile", FULL_PROFILES)
def test_plans_build_with_unique_keys(plans, profile):
    for name, cfgs in plans[profile].items():
        assert all(isinstance(c, TrainConfig) for c in cfgs), name
        keys = [c.key() for c in cfgs]
        assert len(set(keys)) == len(keys), name
        if name != "01_proof_of_concept":
            assert cfgs, f"{name} plans no run in the {profile} profile"
        assert {c.model for c in cfgs} <= {profiles.run_sizes(profile).model, "gemma3-270m"}, name


def test_plan_all_only_takes_numbers_stems_and_names():
    assert list(evidence.plan_all("smoke", only=["09", "lr_priors", "02_lr_priors"])) == ["02_lr_priors",
                                                                                        "09_second_model"]
    with pytest.raises(ValueError, match="no chapter '10'"):
        evidence.plan_all("smoke", only=["10"])
    with pytest.raises(ValueError, match="unknown profile"):
        evidence.plan_all("gpu")


def test_planning_loads_no_model(monkeypatch):
    import priorlib.models as models

    def refuse(*a, **k):
        raise AssertionError("planning loaded a model or tokenizer")
    monkeypatch.setattr(models, "load_model", refuse)
    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", refuse)
    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", refuse)
    assert sum(len(v) for v in evidence.plan_all("cpu").values()) > 0


def test_cpu_plans_have_the_grids_sizes(plans):
    """Known answers from the profile tables: each chapter's grid, counted."""
    cpu = plans["cpu"]
    d02 = profiles.chapter_defaults("02_lr_priors", "cpu")
    extra = len(d02["seeds"]) - 1  # the further seeds run at replicate_lr only
    assert len(cpu["02_lr_priors"]) == len(d02["priors"]) * (len(d02["learning_rates"]) + extra)
    d03 = profiles.chapter_defaults("03_exclusion", "cpu")
    assert len(cpu["03_exclusion"]) == len(d03["priors"]) * len(d03["learning_rates"]) * len(d03["seeds"])
    d04 = profiles.chapter_defaults("04_activation_spaces", "cpu")  # fitted: 2 soft + cut + carry + token cut; xavier: cut
    assert len(cpu["04_activation_spaces"]) == 6 * len(d04["seeds"])
    for stem in ("05_math_interpolation", "06_vae"):
        s = setup(stem, "cpu")
        assert len(cpu[stem]) == len(s.arms) * len(s.learning_rates) * len(s.seeds)
        assert all(c.task == "math" and c.method.value == "deep" for c in cpu[stem])
    s07 = setup("07_regularisation", "cpu")
    assert len(cpu["07_regularisation"]) == len(s07.seeds) + sum(len(w) for w in s07.weights.values())
    s08 = setup("08_posterior_transfer", "cpu")
    controls = [a for a in s08.arms if a in chapter("08_posterior_transfer").CONTROL_ARMS]
    assert len(cpu["08_posterior_transfer"]) == len(s08.source_seeds) + len(controls) * len(s08.seeds)
    su = setup("09_second_model", "cpu")
    by_model = {m: [c for c in cpu["09_second_model"] if c.model == m] for m in su.models}
    assert [len(v) for v in by_model.values()] == [len(su.priors) * len(su.seeds)] * 2
    # shared runs: 07's seed-0 baseline and 08's seed-0 source are runs of 02's grid; 09's main model is 02's grid
    keys02 = {c.key() for c in cpu["02_lr_priors"]}
    assert cpu["07_regularisation"][0].key() in keys02 and cpu["08_posterior_transfer"][0].key() in keys02
    assert {c.key() for c in by_model[su.models[0]]} <= keys02


def test_08_plan_leaves_out_only_the_posterior_arms_and_is_whole_given_a_bank(tmp_path, monkeypatch):
    from priorlib.priors import posterior as post
    S = chapter("08_posterior_transfer")
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache"))
    post._LOADED.clear()
    s = setup("08_posterior_transfer", "smoke")
    n_src = len(s.source_seeds)
    part = S.plan("smoke")
    assert [c.key() for c in part[:n_src]] == [c.key() for c in s.source_configs()]
    assert [(c.prior, c.seed) for c in part[n_src:]] == [(a, k) for a in S.CONTROL_ARMS for k in s.seeds]
    assert S.deferred("smoke") == [(a, k) for a in S.POSTERIOR_ARMS for k in s.seeds]
    with pytest.raises(ValueError, match="no bank"):
        S.target_config(s, "posterior-gaussian", 0)
    # a bank as make_bank saves it: one trained prompt per source run
    sha = post.save_bank(torch.randn(n_src, s.target.n_tokens, 8, generator=torch.Generator().manual_seed(0)), {"t": 1})
    try:
        full = S.plan("smoke", bank=sha)
    finally:
        post._LOADED.clear()
    assert len(full) == n_src + len(s.arms) * len(s.seeds)
    assert [(S.arm_of(c), c.seed) for c in full[n_src:]] == [(a, k) for a in s.arms for k in s.seeds]
    post_cfgs = [c for c in full if c.prior == "posterior"]
    assert post_cfgs and all(c.prior_params["bank"] == sha for c in post_cfgs)
    assert [c.prior_params["source"] for c in post_cfgs if c.prior_params["fit"] == "copy"] == \
        [str(k % n_src) for k in s.seeds]
    assert [c.key() for c in full if c.prior != "posterior"] == [c.key() for c in part]


def test_missing_remakes_a_planned_posterior_bank_the_cache_lost(tmp_path, monkeypatch):
    """A plan written by ``evidence plan`` names 08's posterior bank, a file in the machine's cache made from
    source runs in the evidence bank. On a fresh machine (the cache gone) ``missing`` has the chapter's own
    ``plan`` remake it, then parses the same configs with the same keys; a bank nobody can remake, or one
    named by a notebook-recorded plan, still fails with the one-line error."""
    from priorlib.priors import posterior as post
    S = chapter("08_posterior_transfer")
    monkeypatch.setenv("PRIORLIB_EVIDENCE", str(tmp_path / "evidence"))
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache_a"))
    post._LOADED.clear()
    s = setup("08_posterior_transfer", "smoke")
    vectors = torch.randn(len(s.source_seeds), s.target.n_tokens, 8, generator=torch.Generator().manual_seed(0))
    s.bank, s.n_source_prompts = post.save_bank(vectors, {"t": 1}), len(s.source_seeds)
    cfg = S.target_config(s, "posterior-gaussian", 0)
    folder = tmp_path / "evidence" / "plans"
    folder.mkdir(parents=True)
    (folder / "08_posterior_transfer.json").write_text(json.dumps(
        {"chapter": "08_posterior_transfer", "started": "plan:smoke", "runs": {cfg.key(): cfg.to_dict()}}))
    monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache_b"))  # a fresh machine: the bank is gone
    post._LOADED.clear()
    asked = []

    def remake(profile):
        asked.append(profile)
        post.save_bank(vectors, {"t": 1})  # what bank_from_evidence does with the source runs
        return []
    monkeypatch.setattr(S, "plan", remake)
    try:
        assert [c.key() for c in evidence.missing()] == [cfg.key()] and asked == ["smoke"]
        post._LOADED.clear()
        monkeypatch.setenv("PRIORLIB_CACHE", str(tmp_path / "cache_c"))
        monkeypatch.setattr(S, "plan", lambda profile: [])  # the source runs are not in the bank: nothing remade
        with pytest.raises(ValueError, match="no bank"):
            evidence.missing()
        (folder / "08_posterior_transfer.json").write_text(json.dumps(
            {"chapter": "08_posterior_transfer", "started": "", "runs": {cfg.key(): cfg.to_dict()}}))
        monkeypatch.setattr(S, "plan", remake)
        asked.clear()
        with pytest.raises(ValueError, match="no bank"):  # a notebook's plan: its own execution makes the bank
            evidence.missing()
        assert asked == []
    finally:
        post._LOADED.clear()


# ------------------------------------------------------------------------------------------ notebooks
# what each notebook may hand run_all (directly, or through the chapter function named): the chapter module's
# configs, never a grid built in a cell, so that plan() and the notebook cannot drift apart
RUN_ALL_ARGS = {
    "02_lr_priors": {"configs": "C.configs(S)"},
    "03_exclusion": {"configs": "C.configs(S)"},
    "04_activation_spaces": {"configs": "C.configs(S)"},
    "05_math_interpolation": {},
    "06_vae": {},
    "07_regularisation": {"configs": "S.configs()"},
    "08_posterior_transfer": {"s.source_configs()": None, "configs": "S.target_configs(s)"},
    "09_second_model": {},
}
VIA = {"05_math_interpolation": "S.train_runs(s,", "06_vae": "S.train_runs(s,", "09_second_model": "s09.run_model("}


def _code(stem: str) -> str:
    """The notebook's code cells, one source (IPython magics left out)."""
    nb = json.loads((REPO / "notebooks" / f"{stem}.ipynb").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("%"))


def _assignments(code: str) -> dict[str, list[str]]:
    """``name -> [source of each value assigned to it]``."""
    out: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out.setdefault(node.targets[0].id, []).append(ast.unparse(node.value))
    return out


@pytest.mark.parametrize("stem", TRAINING)
def test_notebooks_train_only_the_chapter_modules_configs(stem):
    code = _code(stem)
    tree = ast.parse(code)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("run_all")]
    if stem in VIA:
        assert not calls and VIA[stem] in code, stem
        return
    assert calls, stem
    assigned = _assignments(code)
    for call in calls:
        arg = ast.unparse(call.args[0])
        assert arg in RUN_ALL_ARGS[stem], (stem, arg)
        want = RUN_ALL_ARGS[stem][arg]
        if want is not None:  # a name: bound once, to the chapter module's call
            assert assigned.get(arg) == [want], (stem, arg, assigned.get(arg))
    assert "ex.grid(" not in code and "lr_seed_grid(" not in code and "TrainConfig" not in code, stem


def test_plan_is_built_from_the_calls_the_notebooks_make():
    """The chapter functions the notebooks call give the plans' configs (a plan and its notebook share code)."""
    C04 = chapter("04_activation_spaces")
    s = setup("04_activation_spaces", "smoke")
    assert [c.key() for c in C04.configs(s)] == [c.key() for c in C04.plan("smoke")]
    assert [(v.get("soft_space"), v.get("deep_mode"), v["prior"]) for v in C04.variants(s)] == [
        ("tokens", None, "fitted-gaussian"), ("layers.0.resid_post", None, "fitted-gaussian"),
        (None, "cut", "fitted-gaussian"), (None, "carry", "fitted-gaussian"), (None, "cut", "xavier"),
        (None, "cut", "fitted-gaussian")]
    assert C04.variants(s)[-1]["deep_layers"] == (0,) and C04.variants(s)[-1]["token_prompt"] is False
    s02 = setup("02_lr_priors", "cpu")
    cfgs = chapter("02_lr_priors").configs(s02)
    assert [c.seed for c in cfgs if math.isclose(c.lr, s02.replicate_lr)] == s02.seeds * len(s02.priors)
