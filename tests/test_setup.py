"""One way to set up a chapter: the profiles table, and papermill parameters parsed before any compute."""
from __future__ import annotations

from pathlib import Path

import pytest

from priorlib.compendium import chapter, chapter_names
from priorlib.compendium.profiles import CHAPTERS, NAMES
from priorlib.compendium.setup import parse_parameter, setup

REPO = Path(__file__).resolve().parents[1]


def test_every_chapter_has_a_row_per_profile_and_one_setup():
    assert chapter_names() == sorted(CHAPTERS)
    for stem in chapter_names():
        assert set(CHAPTERS[stem]) == set(NAMES), stem
        assert callable(chapter(stem).settings), stem
        for profile in NAMES:
            assert setup(stem, profile) is not None


@pytest.mark.parametrize("value, expected", [
    (["isotropic", "xavier"], ["isotropic", "xavier"]),
    ('["isotropic", "xavier"]', ["isotropic", "xavier"]),   # JSON, as `papermill -p priors '[...]'` passes it
    ("[isotropic, xavier]", ["isotropic", "xavier"]),       # YAML flow list
    ("isotropic", ["isotropic"]),                            # one scalar is the one-element list
    (("xavier",), ["xavier"]),
])
def test_list_parameters_accept_lists_and_strings(value, expected):
    assert parse_parameter("priors", value) == expected


def test_numbers_are_typed():
    assert parse_parameter("seeds", "[0, 1]") == [0, 1]
    assert parse_parameter("seeds", 3) == [3]
    assert parse_parameter("learning_rates", "[5e-3, 1e-2]") == [5e-3, 1e-2]
    assert parse_parameter("steps", "12") == 12 and parse_parameter("lr", "0.05") == 0.05
    assert parse_parameter("weights", '{"prior_l2": 10}') == {"prior_l2": [10.0]}
    assert parse_parameter("model", None) is None


@pytest.mark.parametrize("name, value, message", [
    ("seeds", "[0, 1.5]", "expected an integer"),
    ("seeds", '["a"]', "expected a number"),
    ("learning_rates", "[.inf]", "finite"),
    ("priors", "[]", "must not be empty"),
    ("priors", "[1, 2]", "expected a name"),
    ("priors", "[isotropic", "cannot parse"),
    ("steps", True, "expected a number"),
    ("weights", "[1, 2]", "mapping"),
])
def test_bad_values_fail_in_one_line(name, value, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_parameter(name, value)
    assert name in str(err.value) and "\n" not in str(err.value)


def test_setup_resolves_and_rejects_before_compute():
    s = setup("02_lr_priors", "smoke", priors='["isotropic", "xavier"]', seeds="[0, 1]")
    assert s.priors == ["isotropic", "xavier"] and s.seeds == [0, 1]
    assert setup("02_lr_priors", "smoke", priors="isotropic").priors == ["isotropic"]
    with pytest.raises(ValueError, match="unknown parameter 'weights' for chapter 02_lr_priors"):
        setup("02_lr_priors", "smoke", weights={"prior_l2": [1.0]})
    with pytest.raises(ValueError, match="unknown profile 'laptop'"):
        setup("02_lr_priors", "laptop")
    with pytest.raises(ValueError, match="no chapter '10_extra'"):
        setup("10_extra", "smoke")
    # None keeps the profile's value
    assert setup("02_lr_priors", "cpu", learning_rates=None).learning_rates == CHAPTERS["02_lr_priors"]["cpu"]["learning_rates"]


@pytest.mark.parametrize("stem, kw, message", [
    ("01_proof_of_concept", dict(model="nope"), "unknown model 'nope'"),
    ("02_lr_priors", dict(priors=["nope"]), "unknown prior 'nope'"),
    ("02_lr_priors", dict(model="nope"), "unknown model 'nope'"),
    ("03_exclusion", dict(priors="nope"), "unknown prior 'nope'"),
    ("04_activation_spaces", dict(steps=0), "steps must be a positive integer"),
    ("05_math_interpolation", dict(priors=["nope"]), "unknown prior arm"),
    ("06_vae", dict(priors=["nope"]), "unknown prior arm"),
    ("07_regularisation", dict(prior="nope"), "unknown prior 'nope'"),
    ("08_posterior_transfer", dict(arms=["nope"]), "unknown arm"),
    ("09_second_model", dict(priors=["nope"]), "unknown prior 'nope'"),
])
def test_unknown_names_fail_at_setup(stem, kw, message):
    with pytest.raises(ValueError, match=message):
        setup(stem, "smoke", **kw)


# ------------------------------------------------------------------------ every kind of list parameter
# Known answers per element type: (list, JSON string, YAML string, one scalar) -> the parsed list, and a
# bad element and an empty list -> one line naming the parameter and the value.
from priorlib.compendium.setup import PARAMETERS  # noqa: E402

KINDS = {
    str: dict(list=(["isotropic", "xavier"], ["isotropic", "xavier"]),
              json=('["isotropic", "xavier"]', ["isotropic", "xavier"]),
              yaml=("[isotropic, xavier]", ["isotropic", "xavier"]),
              scalar=("isotropic", ["isotropic"]),
              bad=('["isotropic", 3]', "expected a name, got 3 in '[\"isotropic\", 3]'")),
    float: dict(list=([5e-3, 1], [0.005, 1.0]),
                json=("[0.005, 0.01]", [0.005, 0.01]),
                yaml=("[5e-3, 1.0e-2]", [0.005, 0.01]),   # YAML 1.1 reads 5e-3 as a string: converted
                scalar=(1e-3, [0.001]),
                bad=("[0.1, x]", "expected a number, got 'x' in '[0.1, x]'")),
    int: dict(list=([0, -1], [0, -1]),
              json=("[0, 1, -1]", [0, 1, -1]),
              yaml=("[0, 2]", [0, 2]),
              scalar=(3, [3]),
              bad=('[0, "x"]', "expected a number, got 'x' in '[0, \"x\"]'")),
}
LIST_PARAMETERS = sorted(name for name, (shape, _) in PARAMETERS.items() if shape == "list")


def test_the_list_parameters_are_the_ones_the_chapters_take():
    assert LIST_PARAMETERS == ["arms", "deep_layers", "layers", "learning_rates", "models", "priors", "seeds",
                               "source_seeds", "sweep_betas", "sweep_var_match"]


@pytest.mark.parametrize("name", LIST_PARAMETERS)
@pytest.mark.parametrize("form", ["list", "json", "yaml", "scalar"])
def test_list_parameter_known_answers(name, form):
    value, expected = KINDS[PARAMETERS[name][1]][form]
    got = parse_parameter(name, value)
    assert got == expected and [type(x) for x in got] == [PARAMETERS[name][1]] * len(expected)


@pytest.mark.parametrize("name", LIST_PARAMETERS)
@pytest.mark.parametrize("form", ["bad", "empty_json", "empty_list"])
def test_list_parameter_bad_values_are_one_line_naming_it(name, form):
    value, message = {"bad": KINDS[PARAMETERS[name][1]]["bad"],
                      "empty_json": ("[]", "must not be empty (got '[]'"),
                      "empty_list": ([], "must not be empty (got []")}[form]
    with pytest.raises(ValueError) as err:
        parse_parameter(name, value)
    text = str(err.value)
    assert text == f"parameter {name}: {message}" or (form != "bad" and text.startswith(f"parameter {name}: {message}"))
    assert "\n" not in text


@pytest.mark.parametrize("value, expected", [
    ({"nearest_token": [1, 10]}, {"nearest_token": [1.0, 10.0]}),
    ('{"nearest_token": [1, 10], "prior_l2": 3}', {"nearest_token": [1.0, 10.0], "prior_l2": [3.0]}),
    ("{nearest_token: [1, 1e1]}", {"nearest_token": [1.0, 10.0]}),
    ("{prior_l2: 10}", {"prior_l2": [10.0]}),     # one weight per regulariser: the one-element list
])
def test_weights_known_answers(value, expected):
    assert parse_parameter("weights", value) == expected


@pytest.mark.parametrize("value, message", [
    ("{prior_l2: [1, x]}", "parameter weights.prior_l2: expected a number, got 'x' in '{prior_l2: [1, x]}'"),
    ("{}", "parameter weights: expected a non-empty mapping, got '{}'"),
    ("[1, 10]", "parameter weights: expected a non-empty mapping, got '[1, 10]'"),
    ("nearest_token", "parameter weights: expected a non-empty mapping, got 'nearest_token'"),
])
def test_weights_bad_values(value, message):
    with pytest.raises(ValueError) as err:
        parse_parameter("weights", value)
    assert str(err.value) == message


@pytest.mark.parametrize("name, value, message", [
    ("learning_rates", "abc", "parameter learning_rates: expected a number, got 'abc'"),   # the example
    ("seeds", '[0, "x"]', "parameter seeds: expected a number, got 'x' in '[0, \"x\"]'"),   # the example
    ("priors", "{isotropic: 1}", "parameter priors: expected a list, got the mapping '{isotropic: 1}'"),
    ("seeds", "[true]", "parameter seeds: expected a number, got True in '[true]'"),
    ("layers", "[0, 1.5]", "parameter layers: expected an integer, got 1.5 in '[0, 1.5]'"),
])
def test_the_message_names_the_parameter_and_the_value(name, value, message):
    with pytest.raises(ValueError) as err:
        parse_parameter(name, value)
    assert str(err.value) == message


# ------------------------------------------------------------------------ what papermill's CLI passes
def _papermill_values(tmp_path, stem, *pairs) -> dict:
    """The values ``papermill NB out -p KEY VALUE ...`` injects (``--prepare-only``: no kernel starts)."""
    from click.testing import CliRunner
    from papermill.cli import papermill

    import nbformat
    out = tmp_path / f"{stem}.ipynb"
    args = [str(REPO / "notebooks" / f"{stem}.ipynb"), str(out), "--prepare-only"]
    for key, value in pairs:
        args += ["-p", key, value]
    res = CliRunner().invoke(papermill, args)
    assert res.exit_code == 0, res.output
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    namespace: dict = {}
    exec(injected[0].source, namespace)  # noqa: S102 - papermill's own assignments
    namespace.pop("__builtins__")
    return namespace


def test_papermill_cli_values_reach_setup_as_meant(tmp_path):
    """``-p priors '["isotropic","xavier"]'`` is a string, ``-p priors isotropic`` one prior (accepted, not
    refused), ``-p seeds 3`` one seed; ``-p learning_rates abc`` is refused in one line by setup, which every
    notebook calls before its model loads."""
    v = _papermill_values(tmp_path, "02_lr_priors", ("profile", "smoke"), ("priors", '["isotropic","xavier"]'),
                          ("seeds", "3"), ("deep_layers", "-1"))
    assert v["priors"] == '["isotropic","xavier"]'  # papermill passes the text: setup parses it
    s = setup("02_lr_priors", **v)
    assert (s.priors, s.seeds, s.deep_layers) == (["isotropic", "xavier"], [3], [-1])
    v = _papermill_values(tmp_path, "02_lr_priors", ("profile", "smoke"), ("priors", "isotropic"))
    assert v["priors"] == "isotropic" and setup("02_lr_priors", **v).priors == ["isotropic"]
    v = _papermill_values(tmp_path, "02_lr_priors", ("profile", "smoke"), ("learning_rates", "abc"))
    with pytest.raises(ValueError, match=r"^parameter learning_rates: expected a number, got 'abc'$"):
        setup("02_lr_priors", **v)


def test_every_notebook_parameter_is_typed_and_reaches_setup():
    """Each notebook's ``parameters`` cell names only parameters with a kind here, and its setup call passes
    each of them on (08 passes its ``priors`` as the chapter's ``arms``, of the same kind)."""
    import inspect
    import json

    import papermill as pm
    renamed = {("08_posterior_transfer", "priors"): "arms"}
    for stem in chapter_names():
        path = REPO / "notebooks" / f"{stem}.ipynb"
        names = set(pm.inspect_notebook(str(path))) - {"profile"}
        known = {n for n, p in inspect.signature(chapter(stem).settings).parameters.items()
                 if p.kind is p.KEYWORD_ONLY}
        code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "code")
        for name in names:
            target = renamed.get((stem, name), name)
            assert name in PARAMETERS and target in known, (stem, name)
            assert PARAMETERS[name] == PARAMETERS[target], (stem, name)
            assert f"{target}={name}" in code.replace(" ", ""), (stem, name)
