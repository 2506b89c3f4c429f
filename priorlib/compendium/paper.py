"""The paper's claims, and this book's own hypotheses, one entry each: the rows of the claims page.

    from priorlib.compendium.paper import CLAIMS, claim
    claim("squad-near-web").statement     # the claim, in this book's words
    claim("squad-near-web").measure       # the one measure every chapter that tests it uses
    [c.id for c in CLAIMS if c.kind == "ours"]

Each chapter's :class:`~priorlib.compendium.verdicts.Verdict` names the entry it tests (``claim_id``),
and each decision rule of :data:`priorlib.compendium.margins.RULES` takes its claim and measure from
here, so the page, the rules table and the chapters cannot drift apart. Sections are those of
arXiv:2412.18582 (Sedov, Hachalli Karanam, Kadamba). An entry no chapter tests yet is listed all the
same: the page says "not tested yet".
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PaperClaim", "CLAIMS", "claim", "KINDS", "REPLICATION"]

KINDS = ("paper", "ours")


@dataclass(frozen=True)
class PaperClaim:
    """``PaperClaim("squad-near-web", "4.1, 4.4, 4.5", statement, measure, "paper")``; ``note``: what a
    reader needs beside the verdict (outside evidence, how the test differs from the paper's setting)."""

    id: str
    section: str
    statement: str
    measure: str
    kind: str
    note: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"PaperClaim.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("id", "section", "statement", "measure"):
            if not getattr(self, name):
                raise ValueError(f"PaperClaim.{name} must be non-empty")


_TOST = "final validation loss (nats per answer token), TOST within ±0.05 nats"
_STEPS = "steps to the common loss target"
_SQUAD_WEB = ("silhouette of SQuAD against web-text activations at the deepest point measured, against a "
              "random-split null")
_COLLAPSE = "active latent share and decoded variance ratio (collapsed when either is under 0.25)"

#: the claim whose verdicts are derived from the per-model outcomes of the other claims (chapter 09)
REPLICATION = "second-model"

_OUTSIDE_QUALITY = (
    "Outside evidence points the other way: PEFT's own prompt-tuning benchmark on MetaMathQA "
    "(Llama-3.2-3B, 200 virtual tokens, 5,000 steps) reports 39.1% GSM8K accuracy from a sampled-vocabulary "
    "init against 25.2% from a random one {cite}`mangrulkar2022peft`; Lester et al. found sampled-vocabulary "
    "and class-label inits ahead of random ones at small model sizes, the gap closing as models grow "
    "{cite}`lester2021prompt`.")

CLAIMS: tuple[PaperClaim, ...] = (
    # ---- 4.1 proof of concept
    PaperClaim("embedding-paths-jumpy", "4.1",
               "A sentence traced through the token-embedding space jumps about: consecutive tokens are only a "
               "little closer to each other than the steps of a random walk.",
               "median step ratio, real sentence over random walk, in the token embeddings", "paper"),
    PaperClaim("activation-paths-not-local", "4.1",
               "Higher up in the model, the activations of a sentence's tokens still do not make a localised path.",
               "median step ratio, real sentence over random walk, at the upper layers, beside the embeddings' ratio",
               "paper"),
    PaperClaim("single-cloud", "4.1", "At each layer the activations form one unimodal cloud.",
               "number of layers where two Gaussian components beat one (BIC)", "paper"),
    PaperClaim("answer-tokens-close", "4.1", "The tokens of one answer sit close together in activation space.",
               "median distance between an answer's token activations over that within a random contiguous span "
               "of as many context tokens from the same prompt",
               "paper"),
    PaperClaim("math-modules-apart", "4.1", "The MATH modules lie far from one another in activation space.",
               "silhouette of the MATH modules against each other at the last layer, against a random-split null",
               "paper"),
    PaperClaim("task-clusters", "4.1",
               "Activations group by task: MATH lies away from natural-language text, SQuAD close to web text.",
               "silhouettes of MATH against NLP and of SQuAD against web text at the last layer, against a "
               "random-split null", "paper"),
    PaperClaim("squad-near-web", "4.1, 4.4, 4.5",
               "SQuAD activations do not drift far from web text (C4): the two share one cluster rather than "
               "forming distinct ones.", _SQUAD_WEB, "paper"),
    # ---- 4.2 learning rate and priors
    PaperClaim("prior-decides-posterior", "4.2",
               "Where a trained soft prompt ends up is set by the prior it started from.",
               "Spearman ρ between each run's sampled and trained median distance to the nearest token embedding",
               "paper"),
    PaperClaim("prompts-stay-near-prior", "4.2",
               "At the paper's learning rates prompts hardly move from where their prior put them.",
               "median L2 movement of the prompt beside the token embeddings' neighbour gap and the optimiser's "
               "movement bound", "paper"),
    PaperClaim("no-collapse", "4.2, 5",
               "Trained prompts do not all collapse into the cloud of token embeddings.",
               "share of trained prompts, per prior, inside the token Gaussian's 95% region", "paper"),
    PaperClaim("quality-independent-of-prior", "4.2",
               "The prior the prompt starts from makes no difference to the quality it reaches.",
               _TOST + ", each prior against a reference prior", "paper", note=_OUTSIDE_QUALITY),
    # ---- 4.3 exclusion
    PaperClaim("token-embeddings-peaked", "4.3",
               "The token embeddings' distribution is sharply peaked.",
               "sd / mean of the vocabulary's Mahalanobis distances under its Gaussian fit, beside draws from that fit",
               "paper"),
    PaperClaim("exclusion-outside", "4.3", "Draws from the exclusion prior lie outside the token-embedding density.",
               "share of draws inside the fit's 95% region", "paper"),
    PaperClaim("exclusion-same-quality", "4.3",
               "Prompts started from the exclusion prior reach the quality of those from the fitted Gaussian.",
               _TOST + ", exclusion against the fitted Gaussian", "paper"),
    PaperClaim("exclusion-posterior-outside", "4.3",
               "Prompts trained from the exclusion prior stay outside the token-embedding region.",
               "median trained Mahalanobis distance beside the fit's 95% radius", "paper"),
    # ---- 3.2 and 4.4 activation spaces, deep prompts
    PaperClaim("cut-carry-same", "3.2",
               "When only the token-level prompt is trained, cutting its outputs or carrying them on performs "
               "the same.",
               _TOST + ", cut against carry", "paper",
               note="Chapter 04 tests it as: the 20 token-level vectors prepended to layer 0's input and cut from "
                    "its output, nothing else trained, against the plain soft prompt, which carries them through "
                    "every layer; both from the fitted Gaussian, at the same learning rate and seeds. The paper's "
                    "code cuts the same way: its layer-0 vectors stand in front of the token embeddings and are "
                    "sliced off that layer's output {cite}`kadamba2024code`. Its "
                    "comparison on deep prompts is a different setting, filed as this book's own hypothesis (cut "
                    "and carry on deep prompts), so that its outcome does not count for or against the paper's "
                    "claim."),
    PaperClaim("fit-misses-activations", "4.4", "A Gaussian fitted to the activations represents them poorly.",
               "share of held-out activation rows (texts the fit did not see) inside the fit's 95% prediction "
               "region (a faithful fit holds 95%), and beyond its 99.9% one (a faithful fit: 0.1%)", "paper"),
    PaperClaim("diverged-inits-slower", "4.4",
               "Initialisations that diverge from the activations, the fitted Gaussian among them, take longer "
               "to converge.", _STEPS, "paper"),
    PaperClaim("squad-gaussian-same-quality", "4.4",
               "Soft prompts drawn from a Gaussian fitted to SQuAD activations reach the same quality.",
               _TOST + ", the soft prompt from the SQuAD-activation Gaussian (layer-0 output) against the one "
               "from the token-embedding Gaussian", "paper"),
    PaperClaim("deep-prompts-stay", "4.4", "Trained deep prompts stay where their prior put them in activation space.",
               "median L2 movement of the last deep block beside the activations' neighbour gap and the movement bound",
               "paper"),
    # ---- 4.5 MATH and interpolation
    PaperClaim("math-own-cluster", "4.5",
               "MATH activations form a cluster of their own, apart from SQuAD and web text.",
               "silhouette of MATH against SQuAD and web-text activations at the last deep layer, against a "
               "random-split null", "paper"),
    PaperClaim("math-sharpens-difference", "4.5",
               "Bringing MATH into the picture makes the difference between C4 and SQuAD stand out more.",
               "silhouette of SQuAD against web text in a projection fitted with and without the MATH rows", "paper"),
    PaperClaim("interpolation-usable", "4.5", "Priors interpolated between domains can be used to learn MATH.",
               "final validation loss, each interpolation arm not worse than the fitted Gaussian, and falling",
               "paper"),
    # ---- 4.6 VAE
    PaperClaim("vae-collapses", "4.6", "The VAE prior collapses.", _COLLAPSE, "paper"),
    PaperClaim("variance-penalty-insufficient", "4.6",
               "Constraining the VAE's variance was not enough to prevent the collapse.",
               _COLLAPSE + ", at the largest variance penalty", "paper"),
    PaperClaim("vae-same-quality", "4.6",
               "Prompts drawn from the VAE prior reach the quality of those from the fitted Gaussian.",
               _TOST + ", each VAE arm against the fitted Gaussian", "paper"),
    PaperClaim("squad-activations-concentrated", "4.6",
               "Activations of SQuAD-trained prompts are tightly concentrated.",
               "spread of the trained vectors over the spread of the reference activations", "paper"),
    # ---- 6 conclusion
    PaperClaim("no-prior-improves", "6", "None of the priors tried improves prompt tuning.",
               _TOST + " or `better`, each prior against the sampled-vocabulary init", "paper"),
    # ---- this book's own hypotheses
    PaperClaim("radius-rejection-rate", "3 (ours)",
               "Exclusion by radius rejects N(μ, Σ) draws at the rate its radius predicts.",
               "observed rejection rate against chi2_d.cdf(r²)", "ours"),
    PaperClaim("radius-same-quality", "3 (ours)",
               "Prompts from exclusion by radius reach the quality of those from the fitted Gaussian.",
               _TOST + ", exclusion-radius against the fitted Gaussian", "ours"),
    PaperClaim("radius-posterior-outside", "3 (ours)",
               "Prompts trained from exclusion by radius stay outside the fit's 95% region.",
               "median trained Mahalanobis distance beside the fit's 95% radius", "ours"),
    PaperClaim("cut-carry-same-deep", "3.2 (ours)",
               "On deep prompts (the token-level prompt plus 20 vectors on each of the last 3 layers), cutting the "
               "prompt's outputs or carrying them on performs the same.", _TOST + ", cut against carry", "ours"),
    PaperClaim("regularisation-moves", "7 (ours)", "A regulariser moves where the trained prompt ends up.",
               "each pull-type regulariser's target measure at its largest weight against the unregularised runs",
               "ours"),
    PaperClaim("quality-flat-over-placement", "7 (ours)",
               "Quality stays the same wherever the regularisers make the prompts end.",
               _TOST + ", every regulariser and weight against the unregularised runs", "ours"),
    PaperClaim("held-inside-for-free", "7 (ours)",
               "Prompts can be held inside the token-embedding cloud at no cost in quality.",
               _TOST + ", the arms that end inside the cloud against the unregularised runs", "ours"),
    PaperClaim("posterior-leaves-prior", "8 (ours)",
               "At a high learning rate SQuAD prompts leave their prior (the precondition of the transfer test).",
               "median L2 movement beside the token neighbour gap and the movement bound", "ours"),
    PaperClaim("posterior-usable-prior", "8 (ours)",
               "A distribution fitted to prompts trained on one task is a usable prior for another.",
               "final validation loss, each fitted posterior arm not worse than the fitted Gaussian, and falling",
               "ours"),
    PaperClaim("posterior-prior-faster", "8 (ours)", "A posterior prior speeds up learning a new task.",
               _STEPS + ", each fitted posterior arm against the fitted Gaussian", "ours"),
    PaperClaim("posterior-copy-faster", "8 (ours)", "A prompt trained on another task is a faster start.",
               _STEPS + ", the copied prompt against the fitted Gaussian", "ours"),
    PaperClaim("posterior-vae-collapses", "8 (ours)", "A VAE fitted to the bank of trained prompts collapses too.",
               _COLLAPSE, "ours"),
    PaperClaim(REPLICATION, "9 (ours)",
               "The claims checked on the main model come out the same on a second model family (Gemma-3-270M).",
               "each claim's own measure on both models: the same outcome on each", "ours"),
)

_BY_ID = {c.id: c for c in CLAIMS}
if len(_BY_ID) != len(CLAIMS):
    raise RuntimeError("priorlib.compendium.paper: two claims share an id")


def claim(claim_id: str) -> PaperClaim:
    """``claim("vae-collapses")`` -> its :class:`PaperClaim`; an unknown id is an error naming the known ones."""
    if claim_id not in _BY_ID:
        raise KeyError(f"no claim {claim_id!r} in the registry; known: {sorted(_BY_ID)}")
    return _BY_ID[claim_id]
