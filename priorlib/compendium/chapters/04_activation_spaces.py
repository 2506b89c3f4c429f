"""Chapter 04 (paper section 4.4): priors fitted to activations, and deep prompts.

    C = chapter("04_activation_spaces")
    refs = C.domain_references(model, tok, settings, "layers.29.resid_post")
    sep = C.cluster_separation(refs["web"].vectors, refs["squad"].vectors)   # a protocol.Separation
    coverage = {point: C.fit_coverage(*C.held_out_fit(model, tok, settings, point))}
    verdicts, numbers = C.verdicts({point: sep}, rows, deep_place, act_gap, configs=deep_configs, dim=d,
                                   coverage=coverage)

How far web-text and SQuAD token activations separate is decided by the book's one cluster rule,
:func:`priorlib.protocol.separation` (through :func:`priorlib.compendium.decide.cluster`).
"""
from __future__ import annotations

import pandas as pd
import torch

from priorlib.compendium import decide, runs
from priorlib.compendium import experiments as ex
from priorlib.compendium.margins import margin
from priorlib.config import TrainConfig
from priorlib.compendium.runs import Settings, quiet_capture, steps_metric
from priorlib.compendium.verdicts import Outcome, Verdict

STEM = "04_activation_spaces"
FITTED, DIVERGED = "fitted-gaussian", "xavier"  # the prior fitted to the activations; the diverged init tested
ACT_SPACE = "layers.0.resid_post"  # where the soft prompt's activation prior is fitted (its soft_space)
# §3.2's "cut" for the token-level prompt alone: its 20 vectors prepended to layer 0's input (the token
# embeddings) and cut from that layer's output, nothing else trained, at the soft prompt's own learning rate;
# the plain soft prompt ("soft (tokens)", which carries them through every layer) is the "carry" arm
TOKEN_CUT = dict(method="deep", deep_mode="cut", deep_layers=(0,), token_prompt=False, deep_lr="same")
#: a faithful fit's held-out share inside its 95% prediction region is 0.95; "faithful" tolerates 0.90-0.99
COVER_BAND = (0.90, 0.99)
#: ... and at most 1% beyond its 99.9% prediction region (ten times the 0.1% a faithful fit leaves there)
TAIL_LEVEL, TAIL_MAX = 0.999, 0.01
#: rows per dimension under which the book's activation prior shrinks its covariance (Ledoit-Wolf:
#: :func:`priorlib.initial.activation_reference`); the region is then the shrinkage's, not the data's
SHRINK_BELOW = 10


def domain_references(model, tok, s: Settings, point: str, domains=("web", "squad")) -> dict:
    """Activation references at ``point`` for each domain's texts (cached on disk by the engine)."""
    from priorlib.initial import activation_reference
    from priorlib.tasks import domain_texts
    cfg = s.base()
    with quiet_capture():
        return {d: activation_reference(model, tok, domain_texts(d, cfg.reference_texts), point,
                                        model_name=s.model, max_length=s.max_length, name=f"{d} @ {point}")
                for d in domains}


def norm_ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    """Median row norm of ``a`` over that of ``b``."""
    return float(a.float().norm(dim=-1).median() / b.float().norm(dim=-1).median())


def cluster_separation(web, squad, *, seed: int = 0):
    """:func:`priorlib.compendium.decide.cluster` of web-text against SQuAD rows (a ``protocol.Separation``)."""
    return decide.cluster(web, squad, seed=seed)


def speed_rows(run_list) -> pd.DataFrame:
    """The rows of the speed comparison: the deep "cut" runs from the fitted Gaussian and from Xavier only,
    with steps-to-target against targets of *their own* (the worst final value of these runs), so a slower
    arm's extra steps show (a target from every run of the chapter can sit above both arms' curves, and
    both reach it at once)."""
    pick = [r for r in run_list
            if runs.variant(r.config) == "deep cut" and r.config.prior in ("fitted-gaussian", "xavier")]
    if not pick:
        return pd.DataFrame(columns=["variant", "prior", "seed", "steps_to_target", "val_steps_to_target"])
    return runs.quality(pick, fields=("prior", "lr", "seed"), by=("variant", "prior"), with_variant=True)[0]


def speed_sentence(rows: pd.DataFrame) -> str:
    """What :func:`speed_rows` found, for the quality section: the deep "cut" arms' own training-loss target
    and the mean steps each prior needed to reach it (the chapter-wide target of the quality table is set by
    its worst run, since §3.2's token cut, and every other run reaches it within a few steps)."""
    if rows.empty:
        return "No deep 'cut' runs from the fitted Gaussian or Xavier: no speed comparison."
    steps = rows.groupby("prior")["steps_to_target"].mean()
    return (f"Against the deep 'cut' runs' own training-loss target, {rows.attrs['train_target']:.3f} nats/token "
            "(the worst final loss among them), deep 'cut' needed on average "
            + ", ".join(f"{v:.1f} steps from {k}" for k, v in steps.items()) + " to reach it.")


def converges_later(rows: pd.DataFrame):
    """``(result, measure)``: does deep "cut" from Xavier need more steps than from the fitted Gaussian?
    :func:`decide.faster` of the fitted Gaussian against Xavier on :func:`runs.steps_metric`'s measure
    (``rows``: best :func:`speed_rows`, whose targets are the two arms' own)."""
    cut = rows[rows["variant"] == "deep cut"]
    measure = steps_metric(cut)
    fit, xav = (decide.arm(cut, measure, p, prior=p) for p in ("fitted-gaussian", "xavier"))
    return decide.faster(fit, xav), measure


def cut_vs_carry(rows: pd.DataFrame, measure: str = "final_val_loss"):
    """:func:`decide.same_quality` of deep "cut" against "carry" (fitted-Gaussian prior) on ``measure``."""
    g = rows[rows["prior"] == "fitted-gaussian"]
    return decide.same_quality(decide.arm(g, measure, "cut", variant="deep cut"),
                               decide.arm(g, measure, "carry", variant="deep carry"), measure)


def token_cut_vs_carry(rows: pd.DataFrame, measure: str = "final_val_loss"):
    """:func:`decide.same_quality` of the token-level prompt alone cut after layer 0 (:data:`TOKEN_CUT`)
    against the plain soft prompt, which carries it on, both from the fitted Gaussian (§3.2). The cut arm's
    vectors are drawn from the Gaussian of layer 0's input on SQuAD texts (the text's token embeddings), the
    soft prompt's from that of the vocabulary: the same space, two fits of it."""
    g = rows[rows["prior"] == FITTED]
    return decide.same_quality(decide.arm(g, measure, "cut", variant="token cut"),
                               decide.arm(g, measure, "carry", variant="soft (tokens)"), measure)


def _f1_phrase(f1) -> str:
    """The F1 side of a cut-versus-carry verdict: the difference in points and its TOST outcome."""
    if f1 is None:
        return "n/a"
    return f"{f1.estimate:+.1f} points, 90% CI [{f1.ci_low:+.1f}, {f1.ci_high:+.1f}]: {f1.outcome.value} (margin ±{f1.margin:g})"


def deep_runs(run_list) -> list:
    """The runs with deep blocks on the upper layers (every deep run but the token-level "cut" of §3.2,
    whose one block sits on layer 0's input)."""
    return [r for r in run_list if r.config.method.value == "deep" and runs.variant(r.config).startswith("deep ")]


def activation_vs_token_gaussian(rows: pd.DataFrame, measure: str = "final_val_loss"):
    """:func:`decide.same_quality` of the soft prompt drawn from the Gaussian fitted to SQuAD activations at
    :data:`ACT_SPACE` (the task's own texts: :func:`priorlib.initial.initial_prompts` fits the activation
    reference on ``domain_texts(config.task)``) against the soft prompt drawn from the Gaussian fitted to the
    token embeddings, the chapter's (and notebook 02's) baseline; both are the fitted-Gaussian prior, same
    seeds and learning rate. The chapter trains no web-text activation arm."""
    g = rows[rows["prior"] == FITTED]
    return decide.same_quality(decide.arm(g, measure, "SQuAD-activation Gaussian", variant=f"soft ({ACT_SPACE})"),
                               decide.arm(g, measure, "token-embedding Gaussian", variant="soft (tokens)"), measure)


def held_out_fit(model, tok, s: Settings, point: str, domain: str = "squad"):
    """``(fit, held_out, n_fit, n_texts)`` at ``point``: the Gaussian the book's activation prior fits
    (:func:`priorlib.initial.activation_reference`, its shrinkage rule included) on the first half of
    ``domain``'s reference texts, the activation rows of the other half (at most ``MAX_ROWS``), and how many
    token rows the fit saw, and how many texts the held-out rows come from. Texts, not tokens, are split, and texts that share a source (SQuAD questions on
    one paragraph) stay on one side (:func:`split_by_source`): a held-out row of a paragraph the fit saw is
    not held out."""
    from priorlib.activations import _token_lengths
    from priorlib.initial import activation_reference
    from priorlib.tasks import domain_texts
    fit_texts, held_texts = split_by_source(domain_texts(domain, s.base().reference_texts))
    with quiet_capture():
        fit, held = (activation_reference(model, tok, t, point, model_name=s.model, max_length=s.max_length,
                                          name=f"{domain} @ {point} ({part} half)")
                     for t, part in ((fit_texts, "fit"), (held_texts, "held-out")))
    return fit.gaussian, held.vectors, int(_token_lengths(tok, fit_texts, s.max_length).sum()), len(held_texts)


def source_of(text: str) -> str:
    """The passage a text was written about: a SQuAD prompt's context (what precedes its ``Question:``
    line); any other text is its own source."""
    head, sep, _ = text.partition("\nQuestion:")
    return head if sep else text


def split_by_source(texts: list[str]) -> tuple[list[str], list[str]]:
    """``(fit, held_out)``: about half the texts each, no source (:func:`source_of`) on both sides. Sources
    go to the fit side in the order they first appear until it holds half the texts; the rest are held out.

        split_by_source(["A\nQuestion: 1", "B\nQuestion: 2", "A\nQuestion: 3", "C"])
        # (["A\nQuestion: 1", "A\nQuestion: 3"], ["B\nQuestion: 2", "C"])
    """
    groups: dict[str, list[str]] = {}
    for t in texts:
        groups.setdefault(source_of(t), []).append(t)
    fit: list[str] = []
    held: list[str] = []
    for members in groups.values():
        (fit if len(fit) < len(texts) // 2 else held).extend(members)
    if not fit or not held:
        raise ValueError(f"held-out fit: {len(texts)} texts from {len(groups)} source(s) cannot be split in two")
    return fit, held


def prediction_radius2(dim: int, n: int, level: float) -> float:
    """Squared Mahalanobis radius holding ``level`` of *new* rows under a Gaussian fitted (mean and unbiased
    covariance) to ``n`` rows of a true ``N(mu, Sigma)`` in ``dim`` dimensions: the Hotelling T² prediction
    region, ``(1 + 1/n) dim (n-1) / (n-dim) F^-1(level; dim, n-dim)``. It tends to ``chi2_dim^-1(level)`` as
    ``n`` grows; at ``n = 40 dim`` the plain chi² region holds only ~88% of new rows of a Gaussian source.

    >>> round(prediction_radius2(576, 23_040, 0.95), 1)    # n = 40 d; chi2_576^-1(0.95) = 632.9
    650.0
    """
    from scipy.stats import f
    if not n > dim:
        return float("nan")
    return float((1 + 1 / n) * dim * (n - 1) / (n - dim) * f.ppf(level, dim, n - dim))


def fit_coverage(fit, held_out: torch.Tensor, n_fit: int, n_texts: int | None = None, *, seed: int = 0,
                 n_draws: int = 4096) -> dict:
    """How a Gaussian ``fit`` (fitted on ``n_fit`` rows) holds ``held_out`` rows it never saw, rows that come
    from ``n_texts`` texts (``n_units``: the intervals' sample size, :func:`represents_poorly`).

    ``inside`` / ``share_inside``: rows within its 95% prediction region (:func:`prediction_radius2`; a
    faithful fit holds 95% whatever ``n_fit``); ``beyond`` / ``share_beyond``: rows outside its 99.9% one
    (faithful: 0.1%); ``share_inside_chi2``: within the plain ``chi2_d^-1(0.95)`` radius, beside
    ``faithful_share_chi2``, what a Gaussian source would put there at this ``n_fit`` (below 95%: estimation
    error alone); ``draws_share_inside_chi2``: ``n_draws`` draws from the fit itself, ~95% *by construction*
    (a check of the code, never evidence); ``shrunk``: fewer than ``SHRINK_BELOW d`` fit rows.
    """
    from scipy.stats import chi2, f
    d, n = fit.dim, len(held_out)
    m2 = torch.cat([fit.mahalanobis(c) for c in held_out.split(4096)]).pow(2).numpy() if n else torch.zeros(0).numpy()
    chi = float(chi2.ppf(0.95, d))
    r95, rtail = prediction_radius2(d, n_fit, 0.95), prediction_radius2(d, n_fit, TAIL_LEVEL)
    draws = fit.mahalanobis(fit.sample(n_draws, torch.Generator().manual_seed(seed))).pow(2)
    faithful = (float(f.cdf(chi / (1 + 1 / n_fit) * (n_fit - d) / (d * (n_fit - 1)), d, n_fit - d))
                if n_fit > d else float("nan"))
    inside, beyond = int((m2 <= r95).sum()), int((m2 > rtail).sum())
    share = (lambda k: k / n if n else float("nan"))
    return {"n_fit": int(n_fit), "n_held_out": n, "dim": d, "shrunk": n_fit < SHRINK_BELOW * d,
            "n_units": int(min(n, n_texts)) if n_texts else n,
            "radius2_95": r95, "radius2_tail": rtail, "chi2_95": chi,
            "inside": inside, "share_inside": share(inside), "beyond": beyond, "share_beyond": share(beyond),
            "share_inside_chi2": share(int((m2 <= chi).sum())), "faithful_share_chi2": faithful,
            "draws_share_inside_chi2": float((draws <= chi).double().mean())}


def represents_poorly(inside: int, beyond: int, n: int, *, n_fit: int, dim: int,
                      n_units: int | None = None) -> tuple[Outcome, str]:
    """Does a Gaussian fitted on ``n_fit`` rows represent ``n`` held-out rows poorly? ``inside`` of them lie in
    its 95% prediction region, ``beyond`` outside its 99.9% one (:func:`fit_coverage`); 95% Wilson intervals
    on ``n_units`` independent units (default ``n``): the token rows of one text are not independent, so the
    chapter passes the number of held-out texts, the sample size if every text's rows moved together (the
    shares stay the rows'; only the intervals widen).

    agrees: the inside share's interval lies wholly outside :data:`COVER_BAND` (0.90-0.99), or the tail
    share's wholly above :data:`TAIL_MAX` (1%); contradicts: the inside share's interval lies inside the band
    and the tail share's below 1%; otherwise inconclusive. Inconclusive also without rows, and with fewer
    than ``SHRINK_BELOW`` fit rows per dimension (the prior then shrinks the covariance, and the region
    measures the shrinkage: no prediction region is exact there).

    >>> represents_poorly(800, 5, 1000, n_fit=20_000, dim=64)[0].value      # 80% inside: too few
    'agrees'
    >>> represents_poorly(4990, 0, 5000, n_fit=20_000, dim=64)[0].value     # 99.8%: a region far too wide
    'agrees'
    >>> represents_poorly(950, 1, 1000, n_fit=20_000, dim=64)[0].value      # as a faithful fit
    'contradicts'
    >>> represents_poorly(950, 1, 1000, n_fit=500, dim=64)[0].value         # shrunk: the region is the shrinkage's
    'inconclusive'
    """
    from scipy.stats import binomtest
    if n < 1:
        return Outcome.INCONCLUSIVE, "no held-out rows"
    if n_fit < SHRINK_BELOW * dim:
        return Outcome.INCONCLUSIVE, (f"the fit saw {n_fit} rows for {dim} dimensions (under {SHRINK_BELOW} per "
                                      "dimension the prior shrinks its covariance; no exact region)")
    units = n if not n_units else int(min(n, n_units))
    (lo, hi), (tlo, thi) = (tuple(binomtest(int(round(k / n * units)), units).proportion_ci(0.95, method="wilson"))
                            for k in (inside, beyond))
    lo_b, hi_b = COVER_BAND
    per = "" if units == n else f", intervals over {units} held-out texts"
    why = (f"{inside / n:.1%} of {n} held-out rows inside the 95% region{per} (CI [{lo:.1%}, {hi:.1%}]; faithful: "
           f"95%, band {lo_b:.0%}-{hi_b:.0%}), {beyond / n:.2%} beyond the 99.9% one (CI [{tlo:.2%}, {thi:.2%}]; "
           f"faithful: 0.1%, at most {TAIL_MAX:.0%})")
    if hi < lo_b or lo > hi_b or tlo > TAIL_MAX:
        return Outcome.AGREES, "represents them poorly: " + why
    if lo_b <= lo and hi <= hi_b and thi < TAIL_MAX:
        return Outcome.CONTRADICTS, "holds them as a faithful fit would: " + why
    return Outcome.INCONCLUSIVE, "neither shown: " + why


def misses_activations(coverage: dict | None) -> tuple[Outcome, str]:
    """The claim over every point of ``coverage`` (point -> :func:`fit_coverage`): :func:`represents_poorly`
    at each, combined by :func:`decide.every`; no points -> inconclusive."""
    if not coverage:
        return Outcome.INCONCLUSIVE, "not measured (no held-out activations)"
    got = {p: represents_poorly(c["inside"], c["beyond"], c["n_held_out"], n_fit=c["n_fit"], dim=c["dim"],
                                n_units=c.get("n_units"))
           for p, c in coverage.items()}
    why = "; ".join(f"at `{p}` {w} (draws from the fit itself: {coverage[p]['draws_share_inside_chi2']:.1%} "
                    "inside its chi² region, by construction)" for p, (_, w) in got.items())
    return decide.every(o for o, _ in got.values()), why


def deep_lr_scale(runs) -> float:
    """The largest deep-block learning-rate multiplier of ``runs`` (1 for runs recorded without one)."""
    return max((max((r.metrics.get("deep_lr_scale") or {"": 1.0}).values()) for r in runs), default=1.0)


def trained_concentration(deep, reference, key: str, *, act_gap: float, lr_scale: float = 1.0,
                          seed: int = 0) -> dict:
    """:func:`priorlib.metrics.shape.concentration` of the last deep block (``key``) of the SQuAD-trained
    fitted-Gaussian "cut" runs in ``deep`` against the SQuAD activations ``reference`` at that block's layer
    (§4.6: *activations of SQuAD-trained prompts are tightly concentrated*). The step-0 blocks and the
    movement bound of those runs (:func:`decide.movement` at the blocks' learning rate) decide whether a
    tight result could have come out otherwise."""
    from priorlib.metrics.shape import concentration
    runs_ = [r for r in deep if r.config.prior == FITTED and r.config.deep_mode == "cut"]
    if not runs_:
        raise ValueError("no fitted-Gaussian deep 'cut' run among the deep runs")
    ck = [r.checkpoints() for r in runs_]
    ref = reference.vectors if hasattr(reference, "vectors") else reference
    bound = decide.movement([r.config for r in runs_], ref.shape[-1], act_gap, scale=lr_scale).bound
    return concentration([c[-1][1][key].float().numpy() for c in ck], ref.float().numpy(),
                         prior=[c[0][1][key].float().numpy() for c in ck], bound=bound, seed=seed)


def verdicts(sep: dict, rows: pd.DataFrame, deep_place: pd.DataFrame, act_gap: float, *, configs=None,
             dim: int | None = None, lr_scale: float = 1.0, coverage: dict | None = None,
             concentrated: dict | None = None, speed: pd.DataFrame | None = None) -> tuple[list[Verdict], dict]:
    """Closing verdicts of notebook 04 (rules: ``margins.RULES``); ``speed``: :func:`speed_rows` (default: the
    speed comparison reads ``rows``, whose targets come from every run).

    1. *SQuAD does not diverge far from web text (one cluster)*: the opposite of the ``protocol.Separation``
       at the deepest point measured (``sep``: point -> :func:`cluster_separation`).
    2. *Diverged initialisations converge later*: :func:`converges_later` (steps to the common target,
       ``better``); Xavier is the diverged init tested, the fitted Gaussian the reference.
    3. *"cut" and "carry" perform the same*: :func:`cut_vs_carry` (TOST on final validation loss); the
       paper says so of prompts on the token embeddings only, this checks deep prompts (ours); the paper's
       own setting, the token-level prompt alone, is :func:`token_cut_vs_carry`.
    4. *Trained deep prompts stay near their prior in activation space*: the movement bound of the deep
       runs' ``configs`` for a ``dim``-vector, at their blocks' learning rate (``lr_scale`` times the
       schedule: :func:`deep_lr_scale`), beside ``act_gap`` (not testable below it); else every run's
       last-layer block moved less than ``act_gap``.
    5. *A Gaussian fitted to the activations represents them poorly*: :func:`misses_activations` of
       ``coverage`` (point -> :func:`fit_coverage` of :func:`held_out_fit`: fitted on half the SQuAD texts,
       scored on the other half); without ``coverage``, inconclusive.
    6. *Soft prompts from a Gaussian fitted to SQuAD activations reach the same quality*:
       :func:`activation_vs_token_gaussian` (TOST on final validation loss, against the token-embedding
       Gaussian's soft prompt).
    7. *Activations of SQuAD-trained prompts are tightly concentrated*: ``concentrated``, the
       :func:`trained_concentration` of the fitted-Gaussian "cut" runs' last block; without it, inconclusive.
    """
    last = list(sep)[-1]
    later, measure = converges_later(rows if speed is None else speed)
    same = cut_vs_carry(rows)
    f1 = cut_vs_carry(rows, "final_f1") if "final_f1" in rows else None
    tok_same = token_cut_vs_carry(rows)
    tok_f1 = token_cut_vs_carry(rows, "final_f1") if "final_f1" in rows else None
    t = deep_place[deep_place["when"] == "trained"]
    stay = float((t["moved_l2"] < act_gap).mean()) if len(t) else float("nan")
    if configs and dim:
        bound = decide.movement(configs, dim, act_gap, scale=lr_scale)
        seeds = decide.fewest_seeds(t, by=("prior", "deep_mode", "lr"))  # cut and carry are separate arms
        stay_outcome, stay_why = decide.stays_within(t["moved_l2"], act_gap, bound, seeds=seeds,
                                                     paths=t["path_l2"] if "path_l2" in t else None)
    else:
        bound, stay_outcome, stay_why = None, Outcome.INCONCLUSIVE, "no movement bound (needs the runs and the dimension)"
    poor, poor_why = misses_activations(coverage)
    act_tok = activation_vs_token_gaussian(rows)
    if concentrated is None:
        conc_outcome, conc_why = Outcome.INCONCLUSIVE, "not measured (no trained deep blocks given)"
    else:
        conc_outcome, conc_why = Outcome(concentrated["outcome"]), concentrated["reason"]
    cut = (rows if speed is None else speed)
    cut = cut[cut["variant"] == "deep cut"]
    num = {"separation": {p: {"silhouette": s.estimate, "ci": [s.ci_low, s.ci_high], "null_upper": s.null_upper,
                              "outcome": s.outcome.value} for p, s in sep.items()},
           "steps_to_target_deep_cut": cut.groupby("prior")["steps_to_target"].mean().to_dict(),
           "val_steps_to_target_deep_cut": cut.groupby("prior")["val_steps_to_target"].mean().to_dict(),
           "converge_later_decided_by": measure, "converge_later": later.outcome.value,
           "cut_vs_carry_val_loss": {"estimate": same.estimate, "ci": [same.ci_low, same.ci_high],
                                     "outcome": same.outcome.value},
           "cut_vs_carry_f1": {} if f1 is None else {"estimate": f1.estimate, "outcome": f1.outcome.value},
           "token_cut_vs_carry_val_loss": {"estimate": tok_same.estimate, "ci": [tok_same.ci_low, tok_same.ci_high],
                                           "outcome": tok_same.outcome.value},
           "token_cut_vs_carry_f1": {} if tok_f1 is None else {"estimate": tok_f1.estimate,
                                                               "outcome": tok_f1.outcome.value},
           "deep_share_moved_less_than_gap": stay, "activation_median_nn_l2": act_gap,
           "movement_bound": None if bound is None else bound.bound,
           "fit_coverage": dict(coverage or {}), "fit_misses_activations": poor.value,
           "activation_vs_token_gaussian_val_loss": {"estimate": act_tok.estimate,
                                                     "ci": [act_tok.ci_low, act_tok.ci_high],
                                                     "outcome": act_tok.outcome.value},
           "deep_block_concentration": None if concentrated is None else
           {k: (v.value if isinstance(v, Outcome) else v) for k, v in concentrated.items()}}
    one, one_why = decide.one_cluster(sep[last])
    out = [
        Verdict("SQuAD activations do not diverge far from web text (C4): one cluster, not two",
                f"at `{last}`, `one_cluster`: {one_why}", one, claim_id="squad-near-web"),
        Verdict("Initialisations that diverge from the activations take longer to converge (tested: Xavier "
                "against the Gaussian fitted to them)",
                f"deep 'cut', {measure}, fitted Gaussian minus Xavier: {later.reason}", later.outcome,
                claim_id="diverged-inits-slower"),
        Verdict("On deep prompts, 'cut' and 'carry' perform the same (ours: the paper's claim is about the "
                "token-level prompt alone)",
                f"final val loss, cut minus carry (TOST, margin ±{margin('final_val_loss'):g} nats): {same.reason}; "
                f"F1 {_f1_phrase(f1)}", same.outcome,
                claim_id="cut-carry-same-deep"),
        Verdict("When only the token-level prompt is trained, cutting its outputs or carrying them on performs "
                "the same (tested: its 20 vectors cut from layer 0's output, against the plain soft prompt)",
                f"final val loss, cut minus carry (TOST, margin ±{margin('final_val_loss'):g} nats): "
                f"{tok_same.reason}; F1 {_f1_phrase(tok_f1)}",
                tok_same.outcome, claim_id="cut-carry-same"),
        Verdict("Trained deep prompts stay where their prior put them in activation space",
                f"{stay_why} (the activations' typical neighbour gap)", stay_outcome, claim_id="deep-prompts-stay"),
        Verdict("A Gaussian fitted to the activations represents them poorly (fitted on half the SQuAD texts, "
                "scored on the other half's activations)", poor_why, poor, claim_id="fit-misses-activations"),
        Verdict("Soft prompts drawn from a Gaussian fitted to SQuAD activations reach the same quality (tested: "
                f"at `{ACT_SPACE}`, against the soft prompt from the token-embedding Gaussian)",
                f"final val loss, SQuAD-activation minus token-embedding Gaussian (TOST, margin "
                f"±{margin('final_val_loss'):g} nats): {act_tok.reason}", act_tok.outcome,
                claim_id="squad-gaussian-same-quality"),
        Verdict("Activations of SQuAD-trained prompts are tightly concentrated (tested: the last deep block of "
                "the fitted-Gaussian 'cut' runs, against the SQuAD activations entering its layer)",
                conc_why, conc_outcome, claim_id="squad-activations-concentrated"),
    ]
    return out, num


def robust_rows(x: torch.Tensor, q: float = 0.99) -> tuple[torch.Tensor, dict]:
    """Rows of ``x`` whose L2 norm is at most the ``q`` quantile, for pictures: a few tokens with huge
    activations (the first position of a text, typically) would otherwise own the first principal
    component. Returns ``(rows, {"dropped", "norm_q", "max_over_median_norm"})``."""
    n = x.float().norm(dim=-1)
    cut = float(torch.quantile(n, q))
    keep = n <= cut
    return x[keep], {"dropped": int((~keep).sum()), "norm_q": cut,
                     "max_over_median_norm": float(n.max() / n.median())}


def settings(profile: str, *, model=None, priors=None, learning_rates=None, seeds=None, steps=None, batch_size=None,
             n_tokens=None, deep_layers=None, max_length=None, eval_size=None, out_dir=None) -> Settings:
    """This chapter's settings (through :func:`priorlib.compendium.setup.setup`): ``None`` is the profile's value."""
    return runs.settings("04_activation_spaces", profile, model=model, priors=priors, learning_rates=learning_rates, seeds=seeds,
                         steps=steps, batch_size=batch_size, n_tokens=n_tokens, deep_layers=deep_layers,
                         max_length=max_length, eval_size=eval_size, out_dir=out_dir)


def variants(s: Settings) -> list[dict]:
    """The grid's run variants: for each prior of ``s`` but Xavier (the fitted Gaussian when there is none),
    a soft prompt on the token embeddings, one on the output of layer 0, deep "cut" and deep "carry"; then,
    when Xavier is among the priors, deep "cut" from Xavier (the diverged initialisation); last, the
    token-level prompt alone cut after layer 0, from the fitted Gaussian (:data:`TOKEN_CUT`, §3.2)."""
    out = []
    for p in [p for p in s.priors if p != DIVERGED] or [FITTED]:
        out += [dict(prior=p, method="soft", soft_space="tokens"),
                dict(prior=p, method="soft", soft_space=ACT_SPACE),
                dict(prior=p, method="deep", deep_mode="cut"),
                dict(prior=p, method="deep", deep_mode="carry")]
    if DIVERGED in s.priors:
        out.append(dict(prior=DIVERGED, method="deep", deep_mode="cut"))
    out.append(dict(prior=FITTED, **TOKEN_CUT))  # §3.2: the token-level prompt alone, cut after layer 0
    return out


def configs(s: Settings) -> list[TrainConfig]:
    """The runs notebook 04 trains, in the order it asks for them: every :func:`variants` entry x seed, at
    the first learning rate of ``s``."""
    return ex.grid(s.base(), variant=variants(s), lr=[s.learning_rates[0]], seed=s.seeds)


def plan(profile: str = "cpu") -> list[TrainConfig]:
    """Every config the notebook trains in ``profile``, in the order it asks for them: :func:`configs` of its
    default settings, the very call the notebook makes; no model loads (negative deep layers stay as they are
    in the configs, so their keys need no layer count), nothing trains."""
    from priorlib.compendium.setup import setup
    return ex.unique(configs(setup(STEM, profile)))


def clouds_caption(point: str, sep, proj, n_web: int, n_squad: int, dropped: int) -> str:
    """Caption of the web-text / SQuAD activation map at ``point``: what the two axes are, and the separation
    measured in every dimension (``sep``: a ``protocol.Separation``), which the map's two cannot show."""
    share = 100 * float(proj.explained[:2].sum())
    return (f"Token activations at `{point}`: web text (C4 stand-in, {n_web:,} rows) and SQuAD ({n_squad:,} rows) "
            f"on the first two principal components of the SQuAD rows, which hold {share:.1f}% of their variance; "
            f"the {dropped:,} SQuAD rows of largest norm (top 1%) are left out of the picture only. Measured in all "
            f"dimensions, the silhouette of the two is {sep.estimate:.3f} (95% CI [{sep.ci_low:.3f}, "
            f"{sep.ci_high:.3f}]) against a random-split null's 95% quantile of {sep.null_upper:.3f}: "
            f"{sep.outcome.value} with the one-cluster rule of the verdicts below.")
