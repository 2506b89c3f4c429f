"""The margins of every "same" verdict, and the decision rule of every chapter claim, in one place.

    from priorlib.compendium.margins import MARGINS, margin, RULES, rules_markdown
    margin("final_val_loss")      # 0.05: two arms are the same quality when TOST shows |diff| < 0.05 nats
    print(rules_markdown())       # the "Decision rules and margins" section of book/methods.md

Every comparison goes through :mod:`priorlib.protocol` (via :mod:`priorlib.compendium.decide`); this
module only states *which* test, on *which* measure, with *which* margin. A measure marked
``exploratory`` was chosen after seeing results: it is reported, never a verdict.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Margin", "MARGINS", "margin", "Rule", "rule_for", "RULES", "rules_markdown"]


@dataclass(frozen=True)
class Margin:
    """``Margin("final_val_loss", 0.05, "nats/token", why)``: equivalence within ``+-margin``."""

    measure: str
    margin: float
    unit: str
    why: str


MARGINS: dict[str, Margin] = {m.measure: m for m in (
    Margin("final_val_loss", 0.05, "nats per answer token",
           "2-5% of the 1-3 nat answer losses the runs end at: a choice, fixed before the comparisons, of the "
           "smallest gap worth calling a different quality"),
    Margin("final_f1", 3.0, "F1 points (0-100)",
           "SQuAD F1 is reported in whole points; under 3 points counts as no practical difference (a choice)"),
    Margin("final_accuracy", 3.0, "accuracy points (0-100)",
           "the same practical resolution as F1, for exact-match answer accuracy (a choice)"),
    Margin("final_val_token_accuracy", 3.0, "token-accuracy points (0-100)",
           "the same resolution, for teacher-forced answer tokens (a choice)"),
    Margin("silhouette", 0.05, "silhouette units above the random-split null's 95% quantile",
           "for \"one cluster\": a fifth of the 0.25 below which Kaufman and Rousseeuw (1990) find no substantial "
           "cluster structure; with hundreds of rows a group a hair apart is detectably, not practically, separate "
           "(a choice)"),
)}


def margin(measure: str) -> float:
    """``margin("final_f1")`` -> 3.0; a measure without a stated margin cannot be called "the same"."""
    if measure not in MARGINS:
        raise KeyError(f"no equivalence margin is stated for {measure!r}; stated: {sorted(MARGINS)}")
    return MARGINS[measure].margin


@dataclass(frozen=True)
class Rule:
    """One chapter claim: its primary measure and the protocol rule that decides it. ``claim_id`` names the
    entry of :data:`priorlib.compendium.paper.CLAIMS`; build such rules with :func:`rule_for`, which takes
    the claim and the measure from the registry (a rule without one is reported beside the verdicts)."""

    chapter: str
    claim: str
    measure: str
    rule: str
    exploratory: bool = False
    claim_id: str | None = None


def rule_for(chapter: str, claim_id: str, rule: str) -> Rule:
    """``rule_for("03", "exclusion-outside", "< 5%")``: the registry's claim and measure, this chapter's rule."""
    from priorlib.compendium.paper import claim
    c = claim(claim_id)
    return Rule(chapter, c.statement, c.measure, rule, claim_id=claim_id)


_SAME = "`equivalent` (TOST, 90% CI inside ±margin) → agrees; CI outside → contradicts; an arm not known to have plateaued → inconclusive"
_FASTER = "`better` (fewer steps; 95% Welch CI of the difference on one side of 0)"
_CLUSTER = "`separation`: bootstrap CI of the silhouette above the random-split null's 95% quantile"
_ONE_CLUSTER = ("`one_cluster`: the silhouette's bootstrap CI wholly at or below the random-split null's 95% quantile "
                "+ 0.05 (the `silhouette` margin) → agrees; wholly above it → contradicts; else inconclusive")
_MOVES = ("`movement_bound` beside the yardstick: below it → not testable at this learning rate; else a run that "
          "moved the yardstick or more → contradicts; every run moved less while its vectors travelled at least "
          "the yardstick over its checkpoints (`path_l2`), with ≥ 3 seeds per prior and rate → agrees; a run that "
          "never travelled that far, or fewer seeds → inconclusive")
_USABLE = ("not worse than the fitted-Gaussian arm: `equivalent` or `better` (lower loss) agrees → agrees; "
           "`equivalent` contradicts with a higher loss → contradicts; and every seed's loss falls")
_COLLAPSED = "collapsed when either is < 0.25 → agrees; else contradicts"

RULES: tuple[Rule, ...] = (
    rule_for("01", "embedding-paths-jumpy", "0.5 ≤ ratio < 1 and the paired test's p < 0.05"),
    rule_for("01", "activation-paths-not-local",
             "localised (ratio < 1 and below the embeddings' ratio) → contradicts; else agrees"),
    rule_for("01", "squad-near-web", _ONE_CLUSTER + " (token activations, last layer)"),
    rule_for("01", "task-clusters", "`separation` of MATH vs NLP agrees and `one_cluster` of SQuAD vs web agrees"),
    rule_for("01", "single-cloud", "no layer flagged"),
    rule_for("01", "answer-tokens-close",
             "`answers_closer`: 95% percentile-bootstrap CI of the median log ratio over prompts (last layer; control: "
             "random contiguous context spans of the answer's length) wholly below 0 → agrees; wholly above 0 → "
             "contradicts; else, or fewer than 10 prompts with an answer of ≥ 2 tokens → inconclusive"),
    rule_for("01", "math-modules-apart", "`groups_separation` (the multi-group `separation`: bootstrap CI of the "
             "silhouette above a random-relabelling null's 95% quantile → agrees; CI at or below it → contradicts; "
             "per-question mean activations)"),
    rule_for("02", "prior-decides-posterior",
             "Spearman ρ within each learning rate (≥ 5 runs), pooled on Fisher's z (weights n − 3, Bonett-Wright "
             "standard error): ρ ≥ 0.7 with its 95% CI above 0 → agrees; CI wholly below 0.7 → contradicts; a rate "
             "whose `movement_bound` does not reach one token gap is left out (ρ ≥ 0.7 only there → holds by "
             "construction); else inconclusive"),
    rule_for("02", "prompts-stay-near-prior", _MOVES),
    rule_for("02", "quality-independent-of-prior", _SAME + " (at the replicated rate, each prior vs the first)"),
    rule_for("02", "no-collapse",
             "at the replicated rate, all vectors of all seeds (≥ 3) per prior: *collapsed* when the share inside "
             "is ≥ min(0.95, the vocabulary's own share); *outside* when its 95% Clopper-Pearson upper end is below "
             "that; a prior ends where it started when its class is unchanged and `movement_bound` at that rate does "
             "not reach one token gap (or is unknown); a prior that ends outside, not where it started → agrees; "
             "only priors that end outside where they started, the bound below the gap → holds by construction; every prior collapsed, none where it "
             "started → contradicts; else inconclusive"),
    rule_for("02", "no-prior-improves",
             "at the replicated rate, each prior vs vocab-sample: `equivalent` (TOST) or shown worse by `better` "
             "(95% Welch CI) → no gain; not equivalent and `better` (lower loss) → improves; one that improves → "
             "contradicts; every prior without gain → agrees; else inconclusive (an arm not known to have "
             "plateaued, or < 3 seeds, → inconclusive)"),
    rule_for("03", "token-embeddings-peaked", "above twice the fitted Gaussian draws' → agrees; else contradicts"),
    rule_for("03", "exclusion-outside",
             "a share at or above 5% → contradicts; under 5% → holds by construction when the prior's definition "
             "already bounds it below 5% (at most chi2_d.cdf(chi2_d⁻¹(0.95)/c) of N(μ, cΣ) proposals fall "
             "inside), else agrees"),
    rule_for("03", "exclusion-same-quality", _SAME),
    rule_for("03", "exclusion-posterior-outside", "above the 95% radius"),
    rule_for("03", "radius-rejection-rate", "within 3 binomial standard errors of chi2_d.cdf(r²)"),
    rule_for("03", "radius-same-quality", _SAME),
    rule_for("03", "radius-posterior-outside", "above the 95% radius"),
    rule_for("04", "squad-near-web", _ONE_CLUSTER + " (deepest deep-prompt point)"),
    rule_for("04", "diverged-inits-slower", _FASTER + ": Xavier against the fitted Gaussian (the only diverged "
             "init with a reference arm here)"),
    rule_for("04", "cut-carry-same-deep", _SAME + " (deep prompts, fitted-Gaussian prior)"),
    rule_for("04", "cut-carry-same", _SAME + " (the token-level prompt alone: cut from layer 0's output against "
             "the plain soft prompt, fitted-Gaussian prior)"),
    rule_for("04", "deep-prompts-stay", _MOVES),
    rule_for("04", "fit-misses-activations",
             "fit on half the SQuAD texts (no paragraph on both sides), scored on the other half, at both hook "
             "points; 95% Wilson CIs over the held-out texts (their token rows are not independent): the "
             "inside share's wholly outside [0.90, 0.99] or the beyond share's wholly above 1% → agrees; the "
             "inside share's within [0.90, 0.99] and the beyond share's below 1% → contradicts; else, or with "
             "fewer than 10 fit rows per dimension (a shrunk covariance), inconclusive; agrees only when every point "
             "agrees, a point that contradicts → contradicts"),
    rule_for("04", "squad-gaussian-same-quality", _SAME + " (soft prompts, fitted-Gaussian prior, same seeds)"),
    rule_for("04", "squad-activations-concentrated",
             "spread (RMS distance to the centroid) of the trained last deep blocks of the fitted-Gaussian 'cut' "
             "runs over the SQuAD activations' at that layer, 95% bootstrap CI (runs, then vectors; reference "
             "rows): (prior spread + movement bound) / reference spread < 0.5 → holds by construction; < 3 runs "
             "→ inconclusive; CI below 0.5 → agrees; CI above 1 → contradicts; else inconclusive"),
    rule_for("05", "math-own-cluster", _CLUSTER),
    rule_for("05", "squad-near-web", _ONE_CLUSTER + " (last deep layer)"),
    rule_for("05", "interpolation-usable", _USABLE),
    rule_for("05", "math-sharpens-difference",
             "silhouette on the 2-D z-scored PCA (the chapter's picture, coordinates standardised over SQuAD + "
             "web), last deep layer: with minus without MATH, 95% percentile bootstrap CI (rows resampled per "
             "domain, both projections refitted) above 0 → agrees; below 0 → contradicts; else inconclusive"),
    rule_for("06", "vae-collapses", _COLLAPSED + " (plain VAE: β = 1, no penalty); collapsed by the variance "
             "alone while its latent width's top principal components hold < 0.25 of the variance (out of reach "
             "of a linear decoder) → inconclusive"),
    rule_for("06", "variance-penalty-insufficient",
             "every (β, γ) setting at the largest γ collapsed → agrees; one that did not → contradicts"),
    rule_for("06", "vae-same-quality", _SAME),
    rule_for("07", "regularisation-moves",
             "`difference` towards the anchor vs the unregularised runs, for every pull-type regulariser"),
    rule_for("07", "quality-flat-over-placement", _SAME + "; every arm must agree"),
    rule_for("07", "held-inside-for-free", _SAME + "; at least one arm inside must agree"),
    rule_for("08", "posterior-leaves-prior",
             "`movement_bound` beside the gap: below it → not testable at this learning rate; else the median "
             "movement exceeds the gap; rows 08 below are inconclusive unless this agrees"),
    rule_for("08", "posterior-usable-prior", _USABLE),
    rule_for("08", "posterior-prior-faster", _FASTER),
    rule_for("08", "posterior-copy-faster", _FASTER),
    rule_for("08", "posterior-vae-collapses", _COLLAPSED),
    Rule("08", "early validation loss is lower from a posterior prior",
         "validation loss at a third of training (chosen after seeing the steps-to-target result)",
         "`better` (lower loss), reported beside the verdicts", exploratory=True),
    Rule("09", "every claim of 02 and 01's task clusters, on a second model", "as in 02 and 01",
         "as in 02 and 01, per model; each model's outcome counts towards the claim's row"),
    rule_for("09", "second-model", "every claim's outcome is the same evidence on both models → agrees; one "
             "that differs → contradicts; an undecided one → that outcome"),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def rules_markdown() -> str:
    """The margins table and the per-claim rules table, as Markdown (pasted into ``book/methods.md``)."""
    out = ["| measure | margin | unit | why this margin |", "|---|---|---|---|"]
    out += [f"| `{m.measure}` | ±{m.margin:g} | {m.unit} | {_cell(m.why)} |" for m in MARGINS.values()]
    out += ["", "| chapter | claim | primary measure | decision rule |", "|---|---|---|---|"]
    for r in RULES:
        measure = _cell(r.measure) + (" *(exploratory)*" if r.exploratory else "")
        out.append(f"| {r.chapter} | {_cell(r.claim)} | {measure} | {_cell(r.rule)} |")
    return "\n".join(out)
