"""One way to set up a chapter: the profiles table, and papermill parameters parsed before any compute."""
from __future__ import annotations

import pytest

from priorlib.compendium import chapter, chapter_names
from priorlib.compendium.profiles import CHAPTERS, NAMES
from priorlib.compendium.setup import parse_parameter, setup


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
