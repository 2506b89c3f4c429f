import nbformat
import pytest

from priorlib.compendium import claims
from priorlib.compendium.verdicts import Outcome, Verdict


def _nb(path, verdicts, profile="cpu"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["priorlib"] = {"results": {"verdicts": [v.to_dict() if isinstance(v, Verdict) else v for v in verdicts]},
                               "run_manifest": {"profile": profile}}
    nbformat.write(nb, str(path))


def test_claims_page_lists_every_verdict_with_its_chapter(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    _nb(book / "01_a.ipynb", [Verdict("MATH is far", "silhouette 0.41 | probe 99%", Outcome.AGREES)])
    _nb(book / "02_b.ipynb", [Verdict("quality is equal", "F1 12.0 vs 30.5", Outcome.CONTRADICTS),
                              Verdict("prompts stay", "no seeds", Outcome.INCONCLUSIVE)], profile="smoke")
    _nb(book / "03_c.ipynb", [])
    _nb(book / "09_d.ipynb", [Verdict.across("clusters (on both models)", "A: x → agrees. B: y → contradicts.",
                                             {"A": Outcome.AGREES, "B": Outcome.CONTRADICTS})])
    path = claims.write(tmp_path)
    text = path.read_text()
    assert "| paper's observation | what we measured | verdict |" in text
    assert "[01 · a](01_a.ipynb)" in text and "| MATH is far | silhouette 0.41 \\| probe 99% | **agrees** |" in text
    assert "| quality is equal | F1 12.0 vs 30.5 | **contradicts** |" in text and "**inconclusive**" in text
    assert "[02 · b](02_b.ipynb) *(smoke profile" in text and text.count("smoke profile: plumbing only") == 1
    assert "## [03 · c](03_c.ipynb)\n\nThis chapter has not recorded its verdicts yet" in text
    assert "| clusters (on both models) | A: x → agrees. B: y → contradicts. | **A only** |" in text
    assert "stand-in" in text or "stands in" in text


def test_no_page_without_verdicts(tmp_path):
    (tmp_path / "book").mkdir()
    _nb(tmp_path / "book" / "01_a.ipynb", [])
    assert claims.write(tmp_path) is None


def test_old_verdict_schemas_are_refused_by_name(tmp_path):
    (tmp_path / "book").mkdir()
    _nb(tmp_path / "book" / "05_e.ipynb", [{"paper's observation": "c", "what we measured": "m", "agrees?": "yes"}])
    with pytest.raises(ValueError, match=r"05_e.ipynb.*priorlib book --only 05"):
        claims.write(tmp_path)


def test_committed_notebooks_from_before_the_protocol_still_render(tmp_path):
    (tmp_path / "book").mkdir()
    _nb(tmp_path / "book" / "02_b.ipynb", [{"claim": "same", "measured": "m", "outcome": "disagrees", "by_model": {}},
                                           {"claim": "stay", "measured": "m", "outcome": "not tested", "by_model": {}}])
    text = claims.write(tmp_path).read_text()
    assert "| same | m | **contradicts** |" in text and "| stay | m | **inconclusive** |" in text
