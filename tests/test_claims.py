"""The claims page (priorlib.compendium.claims): rows from the claim registry, chapter verdicts filed under
them, outcomes combined over chapters, and the key findings for the landing page; synthetic notebooks."""
import nbformat
import pytest

from priorlib.compendium import claims
from priorlib.compendium.paper import CLAIMS, claim
from priorlib.compendium.verdicts import Outcome, Verdict

A, C, I = Outcome.AGREES, Outcome.CONTRADICTS, Outcome.INCONCLUSIVE
N_PAPER = sum(c.kind == "paper" for c in CLAIMS)


def _nb(path, verdicts, profile="cpu"):
    nb = nbformat.v4.new_notebook()
    rows = [v.to_dict() if isinstance(v, Verdict) else v for v in verdicts]
    nb.metadata["priorlib"] = {"results": {"verdicts": rows}, "run_manifest": {"profile": profile}}
    nbformat.write(nb, str(path))


def _row(text, claim_id):
    """The table row of one registry claim."""
    rows = [line for line in text.splitlines() if line.startswith("| ") and claim(claim_id).statement in line]
    assert len(rows) == 1, claim_id
    return rows[0]


def _outcome(row):
    return row.rstrip(" |").rsplit("| ", 1)[1].strip("*")


@pytest.fixture
def book(tmp_path):
    b = tmp_path / "book"
    b.mkdir()
    _nb(b / "01_proof_of_concept.ipynb", [
        Verdict("SQuAD near web", "silhouette 0.02 | probe 86%", A, claim_id="squad-near-web"),
        Verdict("trajectories", "ratio 0.79", C, claim_id="activation-paths-not-local")])
    _nb(b / "02_lr_priors.ipynb", [Verdict("prior decides", "ρ = 0.95", A, claim_id="prior-decides-posterior"),
                                   Verdict("quality", "TOST: equivalent", A, claim_id="quality-independent-of-prior")])
    _nb(b / "03_exclusion.ipynb", [Verdict("outside", "0% inside", Outcome.HOLDS_BY_CONSTRUCTION,
                                           claim_id="exclusion-outside"),
                                   Verdict("radius rate", "0.95 vs 0.95", A, claim_id="radius-rejection-rate")])
    _nb(b / "04_activation_spaces.ipynb", [Verdict("SQuAD near web", "silhouette 0.30", C, claim_id="squad-near-web")])
    _nb(b / "05_math_interpolation.ipynb", [Verdict("SQuAD near web", "silhouette 0.01", I, claim_id="squad-near-web")])
    _nb(b / "06_vae.ipynb", [Verdict("collapse", "0.05 of the variance", A, claim_id="vae-collapses")], profile="smoke")
    _nb(b / "07_regularisation.ipynb", [])
    _nb(b / "09_second_model.ipynb", [
        Verdict.across("prior decides (on both models)", "A: ρ 0.95. B: ρ 0.99.", {"A": A, "B": A},
                       claim_id="prior-decides-posterior"),
        Verdict.across("quality (on both models)", "A: x. B: y.", {"A": A, "B": C},
                       claim_id="quality-independent-of-prior")])
    return tmp_path


def test_rows_merge_chapters_and_combine_their_outcomes(book):
    text = claims.write(book).read_text()
    squad = _row(text, "squad-near-web")  # agrees, contradicts, inconclusive: the undecided chapter decides
    assert "[01](01_proof_of_concept.ipynb): silhouette 0.02 \\| probe 86% → agrees" in squad
    assert "[04](04_activation_spaces.ipynb): silhouette 0.30 → contradicts" in squad and "[05](" in squad
    assert _outcome(squad) == "inconclusive" and claim("squad-near-web").measure in squad
    assert _outcome(_row(text, "prior-decides-posterior")) == "agrees"          # 02 agrees, 09 agrees on both
    quality = _row(text, "quality-independent-of-prior")                        # 09: holds on A only
    assert _outcome(quality) == "contradicts" and "→ agrees on A only" in quality
    assert _outcome(_row(text, "activation-paths-not-local")) == "contradicts"


def test_untested_construction_smoke_and_notes(book):
    text = claims.write(book).read_text()
    for cid in ("answer-tokens-close", "no-prior-improves", "math-sharpens-difference"):
        row = _row(text, cid)
        assert _outcome(row) == "not tested yet" and "| — |" in row
    assert "holds by construction" in _row(text, "exclusion-outside")
    assert _outcome(_row(text, "exclusion-outside")) == "holds by construction"
    vae = _row(text, "vae-collapses")
    assert "smoke profile: plumbing only" in vae and _outcome(vae) == "agrees (plumbing only)"
    assert "lester2021prompt" in text and "39.1%" in text and "25.2%" in text
    assert "[07 · Regularisation](07_regularisation.ipynb)" in text.split("not recorded their verdicts yet")[1]


def test_our_hypotheses_go_to_the_second_table(book):
    text = claims.write(book).read_text()
    paper, ours = text.split("## This book's own hypotheses")
    assert claim("radius-rejection-rate").statement in ours and claim("radius-rejection-rate").statement not in paper
    assert all(c.statement in paper for c in CLAIMS if c.kind == "paper")
    assert all(c.statement in ours for c in CLAIMS if c.kind == "ours")
    # the second-model row: claims checked on two models, the same outcome on both or not
    rep = _row(text, "second-model")
    assert "A: agrees, B: agrees" in rep and "A: agrees, B: contradicts" in rep and _outcome(rep) == "contradicts"


def test_chapters_of_different_profiles_name_theirs(book):
    """Between two executions of the book (the bank's converged chapters beside short cpu runs) every
    result names its profile and the page says which chapters ran at which; smoke stays marked apart."""
    text = claims.write(book).read_text()
    assert "different profiles" not in text and "(cpu profile)" not in text  # cpu and smoke only: not mixed
    b = book / "book"
    _nb(b / "02_lr_priors.ipynb", [Verdict("prior decides", "ρ = 0.61", A, claim_id="prior-decides-posterior")],
        profile="converged")
    text = claims.write(book).read_text()
    assert "**cpu**: 01, 03, 04, 05, 07, 09; **converged**: 02" in text and "short runs of 60 steps" in text
    row = _row(text, "prior-decides-posterior")
    assert "[02](02_lr_priors.ipynb) (converged profile): ρ = 0.61" in row and "[09](09_second_model.ipynb) (cpu profile)" in row
    vae = _row(text, "vae-collapses")
    assert "(smoke profile: plumbing only" in vae and "(smoke profile)" not in vae
    key = (b / "key_findings.md").read_text()
    assert "**agrees** *(converged profile)*" in key and "*(cpu profile)*" in key and "(smoke profile)" not in key


def test_legacy_results_without_claim_ids_still_render(tmp_path):
    (tmp_path / "book").mkdir()
    _nb(tmp_path / "book" / "02_b.ipynb", [{"claim": "same", "measured": "m", "outcome": "disagrees", "by_model": {}},
                                           {"claim": "stay", "measured": "m", "outcome": "not tested", "by_model": {}}],
        profile="smoke")
    text = claims.write(tmp_path).read_text()
    tail = text.split("## Verdicts not yet tied to a claim")[1]
    assert "| same | m | **contradicts** |" in tail and "| stay | m | **inconclusive** |" in tail
    assert "[02 · B](02_b.ipynb) *(smoke profile: plumbing only" in tail
    assert all(_outcome(_row(text, c.id)) == "not tested yet" for c in CLAIMS)
    assert "appear here once" in (tmp_path / "book" / "key_findings.md").read_text()


def test_key_findings_count_the_papers_claims_and_name_each_chapter(book):
    k = claims.key_findings(claims.collect(book / "book"))
    assert sum(k["counts"].values()) == N_PAPER
    assert k["counts"]["agrees"] == 1 and k["counts"]["contradicts"] == 2 and k["counts"]["inconclusive"] == 1
    assert k["counts"]["holds by construction"] == 1 and k["counts"]["agrees (plumbing only)"] == 1
    assert k["counts"]["not tested yet"] == N_PAPER - 6
    first = {line["stem"]: line for line in k["chapters"]}
    assert first["01_proof_of_concept"]["claim"] == claim("squad-near-web").statement
    assert first["03_exclusion"]["outcome"] == "holds by construction"  # its first *paper* claim
    assert first["06_vae"]["outcome"] == "agrees (plumbing only)" and "07_regularisation" not in first
    md = (book / "book" / "key_findings.md").read_text() if claims.write(book) else ""
    assert f"The paper's {N_PAPER} claims" in md and "not tested yet" in md
    assert "- [04 · Activation spaces](04_activation_spaces.ipynb): " in md and "**contradicts**" in md
    assert first["09_second_model"]["outcome"] == "agrees on both models"  # not a bare "both"


@pytest.mark.parametrize("by_model, expected", [
    ({"A": A, "B": A}, "agrees on both models"), ({"A": C, "B": C}, "agrees on neither model"),
    ({"A": C, "B": A}, "agrees on B only"), ({"A": A, "B": A, "C": A}, "agrees on every model"),
    ({"A": A, "B": I}, "inconclusive"), ({}, "agrees")])
def test_a_verdict_out_of_its_table_says_what_holds_where(by_model, expected):
    v = Verdict.across("c", "m", by_model) if by_model else Verdict("c", "m", A)
    assert claims.shown(v) == expected


def test_no_page_without_verdicts(tmp_path):
    (tmp_path / "book").mkdir()
    _nb(tmp_path / "book" / "01_a.ipynb", [])
    assert claims.write(tmp_path) is None


def test_old_verdict_schemas_are_refused_by_name(tmp_path):
    (tmp_path / "book").mkdir()
    _nb(tmp_path / "book" / "05_e.ipynb", [{"paper's observation": "c", "what we measured": "m", "agrees?": "yes"}])
    with pytest.raises(ValueError, match=r"05_e.ipynb.*priorlib book --only 05"):
        claims.write(tmp_path)


def test_web_source_is_named(book):
    text = claims.write(book).read_text()
    assert "stand-in" in text or "stands in" in text
