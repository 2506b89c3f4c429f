"""Results go to the repository being built (found from the working directory), never to wherever the
package happens to be installed from (issue 14, item 8)."""
from __future__ import annotations

from pathlib import Path

from priorlib.compendium.paths import repo_root, results_dir
from priorlib.compendium.setup import setup

CHECKOUT = Path(__file__).resolve().parents[1]


def _copy_of_repo(tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    (root / "notebooks").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        (root / name).write_text((CHECKOUT / name).read_text())
    return root


def test_results_follow_the_working_directory(tmp_path, monkeypatch):
    root = _copy_of_repo(tmp_path)
    monkeypatch.chdir(root / "notebooks")   # papermill runs a notebook in its own folder
    assert repo_root() == root
    assert results_dir("02_lr_priors") == root / "_build" / "results" / "02_lr_priors"
    # every chapter's settings agree on it, the 05/06 arms included
    for stem in ("01_proof_of_concept", "02_lr_priors", "05_math_interpolation", "07_regularisation",
                 "08_posterior_transfer", "09_second_model"):
        s = setup(stem, "smoke")
        assert Path(s.out_dir) == root / "_build" / "results" / stem, stem


def test_outside_a_repository_the_package_checkout_is_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert repo_root() == CHECKOUT
    assert results_dir("03_exclusion", tmp_path / "mine") == tmp_path / "mine"   # an explicit folder wins


def test_executed_notebooks_record_the_results_folder_relative_to_the_repository(tmp_path, monkeypatch):
    """Issue 19: the settings table and results.json of a chapter show ``_build/results/<stem>``, not the
    machine's absolute path; a folder the user chose outside the repository stays as given."""
    import json
    from priorlib.compendium import runs
    from priorlib.compendium import verdicts as V
    from priorlib.compendium.paths import portable
    root = _copy_of_repo(tmp_path)
    monkeypatch.chdir(root / "notebooks")
    s = runs.settings("02_lr_priors", "smoke")
    table = s.table()
    row = table[table["setting"] == "out_dir"]["value"].tolist()
    assert row == ["_build/results/02_lr_priors"]
    path = V.write_results(s.out_dir, {}, [V.Verdict("c", "m", V.Outcome.INCONCLUSIVE)], notebook="02_lr_priors", profile="smoke", model=s.model,
                           settings={"out_dir": str(s.out_dir)})
    assert json.loads(path.read_text())["settings"]["out_dir"] == "_build/results/02_lr_priors"
    elsewhere = tmp_path / "mine"
    assert portable(elsewhere) == str(elsewhere)
