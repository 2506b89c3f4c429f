
import nbformat

from priorlib.compendium import claims


def _nb(path, verdicts, profile="cpu"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["priorlib"] = {"results": {"verdicts": verdicts}, "run_manifest": {"profile": profile}}
    nbformat.write(nb, str(path))


def test_claims_page_lists_every_verdict_with_its_chapter(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    _nb(book / "01_a.ipynb", [{"paper's observation": "MATH is far", "what we measured": "silhouette 0.41 | probe 99%",
                                "agrees?": "yes"}])
    _nb(book / "02_b.ipynb", [["quality is equal", "F1 12.0 vs 30.5", False]], profile="smoke")
    _nb(book / "03_c.ipynb", [])
    path = claims.write(tmp_path)
    text = path.read_text()
    assert "[01 · a](01_a.ipynb)" in text and "silhouette 0.41 \\| probe 99%" in text and "**yes**" in text
    assert "F1 12.0 vs 30.5" in text and "**no**" in text and "smoke profile" in text
    assert "has not recorded its verdicts yet" in text
    assert "stand-in" in text or "stands in" in text


def test_no_page_without_verdicts(tmp_path):
    (tmp_path / "book").mkdir()
    _nb(tmp_path / "book" / "01_a.ipynb", [])
    assert claims.write(tmp_path) is None
