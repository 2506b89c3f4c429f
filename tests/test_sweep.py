"""``priorlib sweep``: the grid file (scalars are one value), its checks before anything runs, the help,
and the sweep page's result columns. Nothing here trains or starts a kernel (tests/test_book.py executes a
fixture sweep)."""
from __future__ import annotations

import nbformat
import pytest

from priorlib.compendium import cli, sweep
from priorlib.compendium.setup import setup
from priorlib.compendium.paths import repo_root

NB02 = repo_root() / "notebooks" / "02_lr_priors.ipynb"


def _grid(tmp_path, text: str) -> dict:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return sweep.load_grid(path)


def test_scalars_in_a_grid_are_one_value(tmp_path):
    grid = _grid(tmp_path, "priors: [isotropic, xavier]\nprofile: smoke\nlearning_rates: 5e-3\nseeds: [[0, 1]]\n")
    assert grid == {"priors": ["isotropic", "xavier"], "profile": ["smoke"], "learning_rates": [0.005],
                    "seeds": [[0, 1]]}
    points = sweep.grid_points(grid)
    assert points == [{"priors": "isotropic", "profile": "smoke", "learning_rates": 0.005, "seeds": [0, 1]},
                      {"priors": "xavier", "profile": "smoke", "learning_rates": 0.005, "seeds": [0, 1]}]
    assert sweep.point_slugs(points) == ["priors-isotropic_profile-smoke_learning_rates-0.005_seeds-0+1",
                                         "priors-xavier_profile-smoke_learning_rates-0.005_seeds-0+1"]
    # what each point's notebook then runs: one prior (a scalar is the one-element list), both seeds
    s = setup("02_lr_priors", **points[1])
    assert (s.profile, s.priors, s.learning_rates, s.seeds) == ("smoke", ["xavier"], [0.005], [0, 1])


def test_a_product_in_key_order(tmp_path):
    grid = _grid(tmp_path, "learning_rates: [1.0e-3, 5.0e-3]\npriors: [isotropic, xavier, fitted-gaussian]\n")
    points = sweep.grid_points(grid)
    assert len(points) == 6
    assert [(p["learning_rates"], p["priors"]) for p in points[:3]] == [
        (1e-3, "isotropic"), (1e-3, "xavier"), (1e-3, "fitted-gaussian")]


@pytest.mark.parametrize("text, message", [
    ("prior: [isotropic]\n", "the grid: 02_lr_priors has no parameter 'prior'; its parameters: profile, model, priors"),
    ("seeds: [0, x]\n", "parameter seeds: expected a number, got 'x'"),
    ("learning_rates: [abc]\n", "parameter learning_rates: expected a number, got 'abc'"),
    ("priors: [[]]\n", "parameter priors: must not be empty"),
    ("profile: [smoke, laptop]\n", "unknown profile 'laptop'"),
])
def test_bad_grids_are_refused_before_anything_runs(tmp_path, text, message):
    grid = _grid(tmp_path, text)
    with pytest.raises(ValueError) as err:
        sweep.run_sweep(NB02, grid, root=tmp_path, base_parameters={"profile": "smoke"}, log=lambda *a, **k: None)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not (tmp_path / "book").exists()  # nothing executed, no page written


def test_bad_base_parameters_are_refused_too():
    with pytest.raises(ValueError, match="^-p: 02_lr_priors has no parameter 'weights'"):
        sweep.check_grid(NB02, {"priors": ["isotropic"]}, {"profile": "smoke", "weights": "{a: 1}"})
    sweep.check_grid(NB02, {"priors": ["isotropic", "xavier"], "seeds": [[0, 1], 2]}, {"profile": "cpu", "steps": 8})


def test_help_explains_the_grid_and_the_outputs(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["sweep", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for fragment in ("YAML mapping", "scalar is one value", "cartesian product", "nest it",
                     "priors: [isotropic, xavier, fitted-gaussian]", "profile: smoke",
                     "book/sweeps/<stem>/<point>.ipynb", "book/sweeps/<stem>.md", "_build/failed/sweeps/<stem>/",
                     "checked before anything runs", "--no-progress"):
        assert fragment in text, fragment


# ------------------------------------------------------------------------------------------ the page
def _point(folder, name: str, point: dict, profile: str, results: dict | None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["priorlib"] = {"sweep_point": point,
                               "run_manifest": {"profile": profile, "wall_time_s": 12.34, "finished": "2026-01-01"}}
    if results is not None:
        nb.metadata["priorlib"]["results"] = results
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def _results(loss, f1, outcomes, **numbers):
    return {"profile": "smoke", "runs": [{"final_val_loss": x, "final_f1": y} for x, y in zip(loss, f1)],
            "n_runs": len(loss), "numbers": {**numbers, "nested": {"a": 1}},
            "verdicts": [{"claim": f"claim {i} | with a bar", "outcome": o} for i, o in enumerate(outcomes, 1)]}


def test_the_page_lists_results_and_marks_smoke(tmp_path):
    folder = tmp_path / "sweeps" / "02_lr_priors"
    _point(folder, "priors-isotropic", {"priors": "isotropic"}, "smoke",
           _results([2.0, 3.0], [10.0, 20.0], ["agrees", "inconclusive"], rho=0.5, missing=None))
    _point(folder, "priors-xavier", {"priors": "xavier"}, "smoke",
           _results([2.5], [12.0], ["agrees", "agrees"], rho=float("nan")))
    page = sweep.write_index(folder, "02_lr_priors", tmp_path / "sweeps" / "02_lr_priors.md").read_text()
    lines = page.splitlines()
    assert lines[0] == "# Sweep: `02_lr_priors` (smoke profile: plumbing only)"
    assert "```{warning}" in page and "Every point ran in the `smoke` profile" in page and "not evidence" in page
    assert ("| point | priors | profile | runs | final val loss | final F1 / accuracy | verdicts | wall time (s) "
            "| finished (UTC) |") in lines
    assert ("| [priors-isotropic](02_lr_priors/priors-isotropic.ipynb) | isotropic | smoke (plumbing only) | 2 "
            "| 2.5 (2–3) | 15 (10–20) | 1 agrees, 1 inconclusive | 12.3 | 2026-01-01 |") in lines
    assert ("| [priors-xavier](02_lr_priors/priors-xavier.ipynb) | xavier | smoke (plumbing only) | 1 | 2.5 | 12 "
            "| 2 agrees | 12.3 | 2026-01-01 |") in lines
    assert "| point | V1 | V2 |" in lines and "| priors-isotropic | agrees | inconclusive |" in lines
    assert "- V1: claim 1 \\| with a bar" in lines
    # scalar numbers only (nested ones stay on the point's page), in the results' (sorted) key order
    assert "| point | `missing` | `rho` |" in lines
    assert "| priors-isotropic |  | 0.5 |" in lines and "| priors-xavier |  | n/a |" in lines


def test_a_page_without_smoke_or_results(tmp_path):
    folder = tmp_path / "sweeps" / "01_fixture"
    _point(folder, "n_frames-2", {"n_frames": 2}, "cpu", None)
    page = sweep.write_index(folder, "01_fixture", tmp_path / "sweeps" / "01_fixture.md").read_text()
    assert page.startswith("# Sweep: `01_fixture`\n") and "warning" not in page
    assert "| point | n_frames | profile | wall time (s) | finished (UTC) |" in page  # no empty result columns
    assert "Verdicts per point" not in page and "Numbers per point" not in page
    _point(folder, "n_frames-3", {"n_frames": 3}, "smoke", None)
    page = sweep.write_index(folder, "01_fixture", tmp_path / "sweeps" / "01_fixture.md").read_text()
    assert page.startswith("# Sweep: `01_fixture`\n") and "1 of 2 points ran in the `smoke` profile" in page
    assert "| smoke (plumbing only) |" in page and "| cpu |" in page


def test_the_documented_grid_runs_18_points(tmp_path):
    """book/reproduce.md's example grid (scalars per point) parses to 3 x 3 x 2 points the notebook accepts."""
    text = (repo_root() / "book" / "reproduce.md").read_text()
    block = text.split("# grid.yaml\n", 1)[1].split("```", 1)[0]
    grid = _grid(tmp_path, block)
    points = sweep.grid_points(grid)
    assert len(points) == 18 and points[0] == {"priors": "isotropic", "learning_rates": 5e-4, "seeds": 0}
    sweep.check_grid(NB02, grid, {"profile": "cpu"})
    assert setup("02_lr_priors", "cpu", **points[-1]).seeds == [1]
