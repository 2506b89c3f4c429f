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

__all__ = ["Margin", "MARGINS", "margin", "Rule", "RULES", "rules_markdown"]


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
)}


def margin(measure: str) -> float:
    """``margin("final_f1")`` -> 3.0; a measure without a stated margin cannot be called "the same"."""
    if measure not in MARGINS:
        raise KeyError(f"no equivalence margin is stated for {measure!r}; stated: {sorted(MARGINS)}")
    return MARGINS[measure].margin


@dataclass(frozen=True)
class Rule:
    """One chapter claim: its primary measure and the protocol rule that decides it."""

    chapter: str
    claim: str
    measure: str
    rule: str
    exploratory: bool = False


_SAME = "`equivalent` (TOST, 90% CI inside ±margin) → agrees; CI outside → contradicts; an arm not known to have plateaued → inconclusive"
_FASTER = "`better` (fewer steps; 95% Welch CI of the difference on one side of 0)"
_CLUSTER = "`separation`: bootstrap CI of the silhouette above the random-split null's 95% quantile"
_ONE_CLUSTER = _CLUSTER + " → contradicts; CI at or below the null → agrees"
_MOVES = "`movement_bound` beside the yardstick: below it → not testable at this learning rate; else every run moved less than the yardstick"
_USABLE = ("not worse than the fitted-Gaussian arm: `equivalent` or `better` (lower loss) agrees → agrees; "
           "`equivalent` contradicts with a higher loss → contradicts; and every seed's loss falls")

RULES: tuple[Rule, ...] = (
    Rule("01", "sentence paths are jumpy, steps slightly shorter than random walks",
         "median step ratio real / random walk", "0.5 ≤ ratio < 1 and the paired test's p < 0.05"),
    Rule("01", "activation trajectories at upper layers are localised", "upper-layer median step ratio",
         "ratio < 1 and below the embeddings' ratio"),
    Rule("01", "SQuAD activations overlap web text", "silhouette SQuAD vs web, last layer", _ONE_CLUSTER),
    Rule("01", "MATH far from web text, SQuAD close to it", "silhouette MATH vs NLP and SQuAD vs web, last layer",
         "`separation` of MATH vs NLP agrees and of SQuAD vs web contradicts"),
    Rule("01", "a single unimodal cloud at every layer", "layers flagged bimodal (BIC)", "no layer flagged"),
    Rule("02", "the prior decides where trained prompts end", "Spearman ρ, sampled vs trained nearest-token distance",
         "ρ ≥ 0.7 (a rank correlation over runs, not a comparison of arms)"),
    Rule("02", "prompts stay near their prior at the paper's rates", "median L2 movement vs the token neighbour gap", _MOVES),
    Rule("02", "final quality is the same whichever prior", "final_val_loss at the replicated rate, each prior vs the first",
         _SAME),
    Rule("03", "exclusion samples are sharply peaked", "sd / mean of their Mahalanobis distances",
         "under half the vocabulary's"),
    Rule("03", "exclusion samples lie outside the token density", "share of draws inside the fit's 95% region", "< 5%"),
    Rule("03", "exclusion reaches the fitted Gaussian's quality", "final_val_loss", _SAME),
    Rule("03", "trained exclusion prompts stay outside the token region", "median trained Mahalanobis distance",
         "above the 95% radius"),
    Rule("03", "radius exclusion (ours) rejects at its predicted rate", "observed rejection rate of N(μ, Σ) draws",
         "within 3 binomial standard errors of chi2_d.cdf(r²)"),
    Rule("03", "radius exclusion (ours) reaches the fitted Gaussian's quality", "final_val_loss", _SAME),
    Rule("03", "trained radius-exclusion prompts stay outside the fit's 95% region",
         "median trained Mahalanobis distance", "above the 95% radius"),
    Rule("04", "web text and SQuAD activations are distinct clusters", "silhouette web vs SQuAD, deepest point", _CLUSTER),
    Rule("04", "Xavier converges later than the fitted Gaussian", "steps to the common loss target", _FASTER),
    Rule("04", "'cut' and 'carry' perform the same", "final_val_loss", _SAME),
    Rule("04", "deep prompts stay near their prior", "median L2 movement vs the activations' neighbour gap", _MOVES),
    Rule("05", "MATH activations form their own cluster", "silhouette MATH vs SQuAD+web, last deep layer", _CLUSTER),
    Rule("05", "SQuAD and C4 share one cluster", "silhouette SQuAD vs web, last deep layer", _ONE_CLUSTER),
    Rule("05", "interpolation priors are usable for MATH", "final_val_loss", _USABLE),
    Rule("06", "the VAE prior collapses", "active latent share and decoded variance ratio",
         "collapsed when either is < 0.25"),
    Rule("06", "VAE prompts reach the fitted Gaussian's quality", "final_val_loss", _SAME),
    Rule("07", "regularisation moves the posterior", "each regulariser's target measure at its largest weight",
         "`difference` towards the anchor vs the unregularised runs, for every pull-type regulariser"),
    Rule("07", "quality is flat across where prompts end", "final_val_loss, every regulariser and weight vs baseline",
         _SAME + "; every arm must agree"),
    Rule("07", "prompts can be held inside the token cloud at no cost", "final_val_loss of the arms that end inside",
         _SAME + "; at least one arm inside must agree"),
    Rule("08", "trained SQuAD prompts leave their prior (precondition)", "median L2 movement vs the token neighbour gap",
         "`movement_bound` beside the gap: below it → not testable at this learning rate; else the median movement "
         "exceeds the gap; rows 08 below are inconclusive unless this agrees"),
    Rule("08", "posteriors are usable priors for another task", "final_val_loss, each fitted posterior arm", _USABLE),
    Rule("08", "a posterior prior speeds up learning", "steps to the common loss target, vs fitted-gaussian", _FASTER),
    Rule("08", "a copied posterior prompt is a faster start", "steps to the common loss target, vs fitted-gaussian",
         _FASTER),
    Rule("08", "the VAE prior collapses (on the posterior bank)", "as in 06", "as in 06"),
    Rule("08", "early validation loss is lower from a posterior prior",
         "validation loss at a third of training (chosen after seeing the steps-to-target result)",
         "`better` (lower loss), reported beside the verdicts", exploratory=True),
    Rule("09", "every claim of 02 and 01, on a second model", "as in 02 and 01", "as in 02 and 01, per model"),
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
