"""Notebook 01 (paper section 4.1), the activation atlas: its five questions, their verdicts, its sizes.

The measurements live in the library; this module asks notebook 01's questions with them and words
the answers:

- **Settings** (:func:`settings`): the ``smoke`` / ``cpu`` / ``paper`` sizes of
  :mod:`priorlib.compendium.profiles`; a notebook parameter left at ``None`` takes the profile's value.
- **Inputs** (:func:`load_inputs`, :func:`squad_texts_with_roles`): web text, SQuAD prompts with the
  role of every token, MATH prompts.
- **Capture** (:func:`capture_all`): :func:`priorlib.activations.cached_summaries` of each data set at
  the points of :func:`priorlib.hooks.hook_points`.
- **Questions** (:func:`question1` ... :func:`question5`): token and activation trajectories
  (:mod:`priorlib.metrics.trajectories`), SQuAD against web text (:func:`priorlib.metrics.clusters.overlap`,
  :mod:`priorlib.metrics.answers`), the shape of each layer's cloud (:mod:`priorlib.metrics.shape`), and
  the task clusters (:func:`priorlib.metrics.clusters.domain_separation`, the one cluster measure of the
  book), with :mod:`priorlib.projection` for the pictures.
- **Answer spans** (:func:`answer_spans`, decided by :func:`answers_closer`): are an answer's token
  activations closer together than a random contiguous span of the same prompt's context?
- **MATH modules** (:func:`module_clusters`): the silhouette of the six modules against each other
  (:func:`priorlib.protocol.groups_separation`, the multi-group form of the book's cluster rule).
- **Verdicts** (:func:`verdicts`) and the phrases of the captions.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from priorlib.activations import cached_summaries
from priorlib.config import TrainConfig
from priorlib.hooks import depth_of
from priorlib.metrics.answers import answer_vs_question
from priorlib.metrics.clusters import domain_separation, overlap
from priorlib.metrics.shape import layer_unimodality
from priorlib.metrics.trajectories import layer_step_tests, token_step_test
from priorlib.projection import ActivationProjection, pca2, tsne
from priorlib.compendium import decide, profiles
from priorlib.compendium.paths import repo_root, results_dir
from priorlib.compendium.verdicts import Verdict, outcome_of
from priorlib.protocol import Outcome, groups_separation

STEM = "01_proof_of_concept"

__all__ = [
    "Profile", "settings", "repo_root", "ROLE_NAMES", "squad_texts_with_roles", "load_inputs",
    "capture_all", "upper_points", "question1", "question2", "question3", "question4", "question5", "verdicts",
    "verdict_q5", "answer_span_ratios", "answers_closer", "answer_spans", "verdict_answers", "module_clusters",
    "verdict_modules", "fmt_p", "ratio_phrase", "mixing_phrase",
]


# ---------------------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """Sizes of one run of notebook 01. Fields the notebook exposes as papermill parameters come first."""

    model: str
    n_web: int                 # web-text chunks (the paper: 1,000 C4 samples)
    n_squad: int               # SQuAD prompts (one question per context)
    n_math_per_module: int     # per arithmetic module (6 modules)
    layers: tuple[int, ...] | None  # decoder blocks to analyse; None = all
    seed: int
    max_length: int            # web texts are truncated to this many tokens
    tsne_perplexity: float
    # not papermill parameters: fixed per profile
    squad_max_tokens: int      # SQuAD prompts longer than this are skipped (never truncated)
    vocab_tsne_n: int          # vocabulary rows in the token-embedding t-SNE
    token_sample: int          # token rows kept per layer (random walks, shape, overlap)
    n_paths: int               # texts drawn as trajectories
    batch_size: int
    tsne_max_iter: int
    skip_first: int = 1        # leading positions left out of activation statistics (attention sink)
    out_dir: Path | None = None  # where results.json and the figures go


def settings(profile: str = "cpu", *, model=None, n_web=None, n_squad=None, n_math_per_module=None, layers=None,
             seed=None, max_length=None, tsne_perplexity=None, out_dir=None) -> Profile:
    """The profile's sizes (:mod:`priorlib.compendium.profiles`) with every parameter that is not ``None``
    applied; ``out_dir`` is where results go (None: ``_build/results/01_proof_of_concept``)."""
    given = {k: v for k, v in dict(model=model, n_web=n_web, n_squad=n_squad, n_math_per_module=n_math_per_module,
                                   layers=layers, seed=seed, max_length=max_length,
                                   tsne_perplexity=tsne_perplexity).items() if v is not None}
    if "layers" in given:
        given["layers"] = tuple(int(i) for i in given["layers"])
    from priorlib.models import check_model_name
    cfg = Profile(**{**profiles.chapter_defaults(STEM, profile), **given}, out_dir=results_dir(STEM, out_dir))
    check_model_name(cfg.model)
    return cfg


# ---------------------------------------------------------------------------------------------
# SQuAD prompts with token roles
# ---------------------------------------------------------------------------------------------

ROLE_NAMES = ("context", "answer", "question", "template")


def squad_texts_with_roles(tok, examples, n: int, max_tokens: int, seed: int) -> tuple[list[str], list[np.ndarray]]:
    """``n`` SQuAD prompts (one question per context, at most ``max_tokens`` tokens) and token roles.

    The prompt is ``f"{context}\\nQuestion: {question}\\nAnswer:"`` (see :mod:`priorlib.data.squad`).
    Each token gets a role index into :data:`ROLE_NAMES`: 1 if its characters overlap the first gold
    answer span in the context, 0 for the rest of the context, 2 for the question text, 3 for the
    template words ("Question:", "Answer:", newlines).
    """
    by_context: dict[str, object] = {}
    for ex in examples:
        ctx = ex.prompt[: ex.prompt.rfind("\nQuestion: ")]
        by_context.setdefault(ctx, ex)
    pool = list(by_context.values())
    random.Random(seed).shuffle(pool)
    texts, roles = [], []
    for ex in pool:
        if len(texts) == n:
            break
        enc = tok(ex.prompt, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) > max_tokens:
            continue
        q_start = ex.prompt.rfind("\nQuestion: ")
        question = (q_start + len("\nQuestion: "), ex.prompt.rfind("\nAnswer:"))
        a0, a1 = ex.keep_span
        role = np.zeros(len(enc["input_ids"]), dtype=np.int64)
        for t, (s, e) in enumerate(enc["offset_mapping"]):
            if e > a0 and s < a1:
                role[t] = 1
            elif s >= question[0] and e <= question[1] and e > s:
                role[t] = 2
            elif s >= q_start:
                role[t] = 3
        if (role == 1).sum() == 0 or (role == 2).sum() == 0:
            continue
        texts.append(ex.prompt)
        roles.append(role)
    if len(texts) < n:
        raise ValueError(f"only {len(texts)} SQuAD prompts with at most {max_tokens} tokens; asked for {n}")
    return texts, roles


# ---------------------------------------------------------------------------------------------
# the five questions of notebook 01 (each returns plain numbers plus what its figure needs)
# ---------------------------------------------------------------------------------------------

def load_inputs(cfg: Profile, tok) -> dict:
    """Web chunks, SQuAD prompts with token roles, and MATH prompts with their module names."""
    from priorlib.data import MATH_MODULES, load_math, load_squad, load_web, web_source_name

    web = load_web(cfg.n_web, seed=cfg.seed)
    squad, roles = squad_texts_with_roles(tok, load_squad("train", seed=cfg.seed), cfg.n_squad,
                                          cfg.squad_max_tokens, cfg.seed)
    math_ex = load_math("train", n_per_module=cfg.n_math_per_module, seed=cfg.seed)
    return {"web": web, "web_source": web_source_name(), "squad": squad, "squad_roles": roles,
            "math": [e.prompt for e in math_ex], "math_module": [e.meta["module"] for e in math_ex],
            "math_modules": list(MATH_MODULES)}


def capture_all(model, tok, inputs: dict, points: list[str], cfg: Profile) -> dict[str, dict]:
    """:func:`priorlib.activations.cached_summaries` of web text, SQuAD and MATH (keyed by model, sizes,
    seed and the texts)."""
    base = {"model": cfg.model, "seed": cfg.seed, "skip_first": cfg.skip_first, "capture_version": 3}
    last = points[-1]
    common = dict(batch_size=cfg.batch_size, seed=cfg.seed, skip_first=cfg.skip_first)
    return {
        "web": cached_summaries("nb01-web", base, model, tok, inputs["web"], points, max_length=cfg.max_length,
                                token_sample=cfg.token_sample, n_paths=cfg.n_paths, desc="web text", **common),
        "squad": cached_summaries("nb01-squad", base, model, tok, inputs["squad"], points,
                                  max_length=cfg.squad_max_tokens, token_sample=cfg.token_sample, n_paths=0,
                                  keep_all=[last], desc="SQuAD", **common),
        "math": cached_summaries("nb01-math", base, model, tok, inputs["math"], points, max_length=cfg.max_length,
                                 token_sample=min(cfg.token_sample, 1000), n_paths=0, desc="MATH", **common),
    }


def question1(model, tok, web: list[str], cfg: Profile) -> dict:
    """Token trajectories on the token-embedding space: step test and the 2-D maps of a vocabulary sample."""
    from priorlib import arch

    emb = arch.token_embeddings(model)  # [V, d]
    ids = tok(web, add_special_tokens=False, truncation=True, max_length=cfg.max_length)["input_ids"]
    test = token_step_test(emb, ids, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    vocab = np.sort(rng.choice(emb.shape[0], size=min(cfg.vocab_tsne_n, emb.shape[0]), replace=False))
    path_ids = [np.asarray(ids[i]) for i in range(min(cfg.n_paths, len(ids)))]
    rows = np.concatenate([vocab] + path_ids)
    x = emb[torch.from_numpy(rows)].numpy()
    xy = tsne(x, perplexity=cfg.tsne_perplexity, seed=cfg.seed, max_iter=cfg.tsne_max_iter, name="nb01-tsne-vocab",
              params={"model": cfg.model})
    pc, pca_v = pca2(x, fit_on=emb[torch.from_numpy(vocab)].numpy(), seed=cfg.seed)
    return {"test": test, "tsne": xy, "pca": pc, "pca_explained": pca_v.explained_variance_ratio_, "n_vocab": len(vocab), "vocab_size": int(emb.shape[0]),
            "path_lengths": [len(p) for p in path_ids],
            "path_tokens": [tok.convert_ids_to_tokens(p.tolist()) for p in path_ids], "n_texts": len(ids),
            "n_steps": int(len(test["steps"]))}


def upper_points(points: Sequence[str]) -> list[str]:
    """The upper third of the decoder blocks among ``points`` (at least one)."""
    blocks = [p for p in points if p != "embed"]
    return blocks[-max(1, len(blocks) // 3):]


def question2(caps: dict, points: list[str], cfg: Profile) -> dict:
    """Activation trajectories per layer vs random walks over the layer's cloud; PCA paths at one upper layer."""
    import pandas as pd

    web = caps["web"]
    df = pd.DataFrame(layer_step_tests(web, points, cfg.seed))
    up = upper_points(points)
    show = up[len(up) // 2]
    cloud = web[f"sample|{show}"].astype(np.float32)
    path = web[f"path|{show}"].astype(np.float32)
    ap = ActivationProjection(cloud, seed=cfg.seed)  # massive rows out, dimensions standardised
    xy_cloud, xy_path = ap.transform(cloud[~ap.dropped]), ap.transform(path)
    upper = df[df.point.isin(up)]
    emb_row = df[df.point == "embed"].iloc[0]
    return {"table": df, "upper": up, "shown": show, "cloud_xy": xy_cloud, "path_xy": xy_path,
            "pc_labels": [ap.label(0), ap.label(1)], "projection_note": ap.description,
            "path_text": web["path_text"], "upper_median_ratio": float(upper.median_ratio.mean()),
            "upper_cliffs_delta": float(upper.cliffs_delta.mean()),
            "upper_share_shorter": float(upper.share_shorter.mean()),
            "upper_max_p_per_text": float(upper.p_value_per_text.max()),
            "embed_median_ratio": float(emb_row.median_ratio), "embed_cliffs_delta": float(emb_row.cliffs_delta)}


def question3(caps: dict, roles: list[np.ndarray], points: list[str], cfg: Profile) -> dict:
    """SQuAD vs web text at the last point: overlap of the token clouds, answers vs questions."""
    last = points[-1]
    web_rows = caps["web"][f"sample|{last}"].astype(np.float32)
    sq = caps["squad"]
    sq_rows = sq[f"all|{last}"].astype(np.float32)
    ov = overlap(web_rows, sq_rows, seed=cfg.seed)
    sep = decide.cluster(web_rows, sq_rows, seed=cfg.seed)  # the verdict's rule (protocol.separation)
    centre = web_rows.mean(0)
    avq = answer_vs_question(sq_rows, sq["all_text"], sq["all_pos"], roles, centre=centre)
    sq_role = np.concatenate([r[cfg.skip_first:] for r in roles])
    # the same overlap for the embeddings (layer 0), as a yardstick
    ov0 = overlap(caps["web"]["sample|embed"].astype(np.float32), sq["sample|embed"].astype(np.float32),
                  seed=cfg.seed)
    ap = ActivationProjection(web_rows, seed=cfg.seed)  # massive rows out, dimensions standardised
    xy_web, xy_sq = ap.transform(web_rows[~ap.dropped]), ap.transform(sq_rows)
    return {"pc_labels": [ap.label(0), ap.label(1)], "projection_note": ap.description, "point": last, "overlap": ov, "overlap_embed": ov0, "answer_vs_question": avq, "separation": sep,
            "web_xy": xy_web, "squad_xy": xy_sq, "squad_role": sq_role}


def question4(caps: dict, points: list[str], cfg: Profile) -> dict:
    """Per-layer shape of the web-text token cloud: unimodal or not."""
    import pandas as pd

    df = pd.DataFrame(layer_unimodality(caps["web"], points, cfg.seed))
    blocks = [p for p in points if p != "embed"]
    picks = list(dict.fromkeys([points[0], blocks[len(blocks) // 2], points[-1]]))
    flagged = df[df.bimodal]
    if len(flagged):  # always show the most bimodal-looking layer too
        picks.append(df.loc[df.delta_bic.idxmax(), "point"])
    picks = list(dict.fromkeys(picks))
    proj, labels, note = {}, {}, ""
    for p in picks:
        x = caps["web"][f"sample|{p}"].astype(np.float32)
        ap = ActivationProjection(x, seed=cfg.seed)  # massive-activation rows set aside, as in the test; z-scored
        proj[p], labels[p], note = ap.transform(x[~ap.dropped]), [ap.label(0), ap.label(1)], ap.description
    return {"pc_labels": labels, "projection_note": note,"table": df, "n_layers": len(df), "n_bimodal": int(df.bimodal.sum()),
            "bimodal_points": list(flagged.point), "projections": proj,
            "median_delta_bic_per_point": float(df.delta_bic_per_point.median())}


def question5(caps: dict, inputs: dict, points: list[str], cfg: Profile) -> dict:
    """Mean activation per sample for web, SQuAD and the six MATH modules: t-SNE, and per layer the one
    cluster measure (:func:`priorlib.metrics.clusters.domain_separation`: silhouette and cross-validated
    probe, MATH vs NLP and SQuAD vs web)."""
    import pandas as pd

    tasks = np.array(["web"] * len(inputs["web"]) + ["squad"] * len(inputs["squad"]) + list(inputs["math_module"]))
    means = {p: np.concatenate([caps[k][f"mean|{p}"] for k in ("web", "squad", "math")]) for p in points}
    df = pd.DataFrame([{"point": p, "depth": depth_of(p), **domain_separation(means[p], tasks, seed=cfg.seed)}
                       for p in points])
    blocks = [p for p in points if p != "embed"]
    shown = list(dict.fromkeys([blocks[len(blocks) // 2], points[-1]]))
    maps = {p: tsne(means[p], perplexity=cfg.tsne_perplexity, seed=cfg.seed, max_iter=cfg.tsne_max_iter,
                    name="nb01-tsne-tasks", params={"model": cfg.model, "point": p}) for p in shown}
    last = df[df.point == points[-1]].iloc[0]
    x, nlp = means[points[-1]], np.isin(tasks, ["web", "squad"])
    seps = {"math_vs_nlp": decide.cluster(x[~nlp], x[nlp], seed=cfg.seed),
            "squad_vs_web": decide.cluster(x[tasks == "squad"], x[tasks == "web"], seed=cfg.seed)}
    return {"table": df, "tasks": tasks, "maps": maps, "point": points[-1], "separation": seps,
            "silhouette_math_vs_nlp": float(last.silhouette_math_vs_nlp),
            "silhouette_squad_vs_web": float(last.silhouette_squad_vs_web),
            "probe_math_vs_nlp": float(last.probe_math_vs_nlp), "probe_squad_vs_web": float(last.probe_squad_vs_web),
            "share_layers_math_further": float((df.silhouette_math_vs_nlp > df.silhouette_squad_vs_web).mean())}


# ---------------------------------------------------------------------------------------------
# answer spans and MATH modules (two more claims of section 4.1)
# ---------------------------------------------------------------------------------------------

ANSWER_MIN_TOKENS = 2   # an answer of one token has no pairwise distance
ANSWER_MIN_PROMPTS = 10  # fewer eligible prompts: inconclusive
ANSWER_DRAWS = 20       # random context spans per prompt (all of them where there are fewer)


def _median_pdist(x: np.ndarray) -> float:
    from scipy.spatial.distance import pdist
    return float(np.median(pdist(x)))


def answer_span_ratios(rows, text, pos, roles: Sequence[np.ndarray], *, seed: int, n_draws: int = ANSWER_DRAWS,
                       min_tokens: int = ANSWER_MIN_TOKENS) -> dict:
    """Per SQuAD prompt: median pairwise L2 distance among the answer's token activations over the same
    statistic for a random contiguous span of the same length from the prompt's own context.

    ``rows [n, d]`` are every kept token's activation, ``text`` / ``pos`` its prompt and position
    (``all|p``, ``all_text``, ``all_pos`` of :func:`priorlib.activations.summaries`), ``roles`` the token
    roles of :func:`squad_texts_with_roles` (1 = answer, 0 = context). A prompt counts when its kept
    answer tokens form one contiguous span of at least ``min_tokens`` tokens and its context holds at least
    one other span of that length not touching the answer. The control is contiguous, not scattered
    tokens, because neighbouring tokens are closer than random ones whatever they are (an answer is a
    contiguous span); its statistic is the mean over ``n_draws`` spans drawn without replacement (all
    spans where there are fewer), seeded per prompt by ``(seed, prompt)``.

    Returns ``ratio`` ``[m]`` (answer / control), ``answer`` and ``control`` ``[m]``, ``prompt`` ``[m]``
    (indices), ``n_tokens`` ``[m]`` and counts of the prompts left out.
    """
    rows = np.asarray(rows, dtype=np.float64)
    text, pos = np.asarray(text), np.asarray(pos)
    out = {"prompt": [], "n_tokens": [], "answer": [], "control": []}
    short = gapped = no_room = 0
    for i, role in enumerate(roles):
        sel = np.flatnonzero(text == i)
        r = np.asarray(role)[pos[sel]]
        ans = np.flatnonzero(r == 1)
        if len(ans) < min_tokens:
            short += 1
            continue
        if np.any(np.diff(pos[sel][ans]) != 1):
            gapped += 1
            continue
        L = len(ans)
        ctx = (r == 0).astype(np.int64)
        run = np.convolve(ctx, np.ones(L, np.int64), mode="valid")  # context tokens in each window
        starts = np.flatnonzero(run == L)  # a prompt's kept positions are consecutive
        if not len(starts):
            no_room += 1
            continue
        rng = np.random.default_rng([seed, i])
        pick = starts if len(starts) <= n_draws else rng.choice(starts, n_draws, replace=False)
        x = rows[sel]
        out["prompt"].append(i)
        out["n_tokens"].append(L)
        out["answer"].append(_median_pdist(x[ans]))
        out["control"].append(float(np.mean([_median_pdist(x[s:s + L]) for s in pick])))
    res = {k: np.asarray(v) for k, v in out.items()}
    res["ratio"] = res["answer"] / res["control"] if len(res["answer"]) else np.array([])
    res.update(n_short=short, n_gapped=gapped, n_no_room=no_room)
    return res


def answers_closer(ratios, *, seed: int = 0, min_prompts: int = ANSWER_MIN_PROMPTS, n_boot: int = 2000,
                   confidence: float = 0.95) -> dict:
    """The decision of the answer-span claim, from per-prompt ratios (answer span / random context span).

    The measure is the median over prompts of ``log(ratio)``, with a percentile bootstrap
    (``scipy.stats.bootstrap``, seeded) ``confidence`` interval: wholly below 0 -> ``agrees`` (answer
    tokens closer together than random spans), wholly above 0 -> ``contradicts``, else ``inconclusive``;
    fewer than ``min_prompts`` prompts -> ``inconclusive``. Also returns the share of prompts with a
    ratio below 1.

    >>> answers_closer(np.linspace(0.5, 0.9, 12))["outcome"].value
    'agrees'
    >>> answers_closer(np.linspace(1.1, 1.6, 12))["outcome"].value
    'contradicts'
    >>> answers_closer([0.5, 0.6])["reason"]
    'only 2 prompts with an answer of at least 2 tokens (at least 10 needed)'
    """
    from scipy import stats

    r = np.asarray(ratios, dtype=np.float64).ravel()
    if not (np.all(np.isfinite(r)) and np.all(r > 0)):
        raise ValueError("ratios must be finite and > 0")
    out = {"n_prompts": int(len(r)), "share_closer": float(np.mean(r < 1)) if len(r) else float("nan"),
           "median_ratio": float(np.median(r)) if len(r) else float("nan"), "confidence": confidence,
           "ci_low": float("nan"), "ci_high": float("nan")}
    if len(r) < min_prompts:
        return {**out, "outcome": Outcome.INCONCLUSIVE,
                "reason": f"only {len(r)} prompts with an answer of at least {ANSWER_MIN_TOKENS} tokens "
                          f"(at least {min_prompts} needed)"}
    logs = np.log(r)
    if np.ptp(logs) == 0:  # no spread: the interval is the value
        lo = hi = float(logs[0])
    else:
        ci = stats.bootstrap((logs,), np.median, n_resamples=n_boot, confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(seed)).confidence_interval
        lo, hi = float(ci.low), float(ci.high)
    out.update(ci_low=float(np.exp(lo)), ci_high=float(np.exp(hi)))
    span = (f"median ratio {out['median_ratio']:.3f} over {len(r)} prompts, {confidence:.0%} CI "
            f"[{out['ci_low']:.3f}, {out['ci_high']:.3f}]; {100 * out['share_closer']:.0f}% of prompts closer")
    if hi < 0:
        return {**out, "outcome": Outcome.AGREES, "reason": f"answer spans closer than random spans: {span}"}
    if lo > 0:
        return {**out, "outcome": Outcome.CONTRADICTS, "reason": f"answer spans further apart than random spans: {span}"}
    return {**out, "outcome": Outcome.INCONCLUSIVE, "reason": f"the interval reaches 1: {span}"}


def answer_spans(caps: dict, roles: list[np.ndarray], points: list[str], cfg: Profile) -> dict:
    """The answer-span claim at the last point: :func:`answer_span_ratios` of every SQuAD prompt, decided by
    :func:`answers_closer`."""
    last = points[-1]
    sq = caps["squad"]
    spans = answer_span_ratios(sq[f"all|{last}"], sq["all_text"], sq["all_pos"], roles, seed=cfg.seed)
    return {"point": last, "spans": spans, "decision": answers_closer(spans["ratio"], seed=cfg.seed),
            "n_squad": len(roles), "n_draws": ANSWER_DRAWS}


def verdict_answers(qa: dict) -> Verdict:
    """The answer-span row: :func:`answers_closer`'s outcome."""
    d, s = qa["decision"], qa["spans"]
    left = "".join(f", {s[k]} {what}" for k, what in (("n_gapped", "with a broken answer span"),
                                                       ("n_no_room", "without a context span that long")) if s.get(k))
    return Verdict("The tokens of one answer sit close together in activation space",
                   f"last layer, median pairwise L2 distance among an answer's tokens over that among a random "
                   f"contiguous span of as many context tokens from the same prompt (mean of up to "
                   f"{qa['n_draws']} spans), per prompt whose answer has at least {ANSWER_MIN_TOKENS} tokens "
                   f"({d['n_prompts']} of {qa['n_squad']}; {s['n_short']} with shorter answers{left}): {d['reason']}",
                   d["outcome"], claim_id="answer-tokens-close")


def module_clusters(caps: dict, inputs: dict, points: list[str], cfg: Profile) -> dict:
    """The MATH modules against each other at the last point: per-text mean activations (as in
    :func:`question5`), :func:`priorlib.protocol.groups_separation` over the module labels."""
    last = points[-1]
    x, modules = caps["math"][f"mean|{last}"], np.asarray(inputs["math_module"])
    return {"point": last, "n_modules": int(len(np.unique(modules))), "n_texts": int(len(modules)),
            "separation": groups_separation(x, modules, seed=cfg.seed)}


def verdict_modules(qm: dict) -> Verdict:
    """The MATH-module row: the multi-group cluster rule's outcome."""
    sep = qm["separation"]
    return Verdict("The MATH modules lie far from one another in activation space",
                   f"last layer, mean activation per MATH question, {qm['n_modules']} modules against each other: "
                   f"{sep.reason}", sep.outcome, claim_id="math-modules-apart")


def trajectories_localise(q2: dict) -> bool:
    """Whether the upper layers' activation paths are localised: their median step ratio (real over
    random walk) is below 1 and below the token embeddings' ratio."""
    return q2["upper_median_ratio"] < 1.0 and q2["upper_median_ratio"] < q2["embed_median_ratio"]


def verdicts(q1: dict, q2: dict, q3: dict, q4: dict, q5: dict, qa: dict, qm: dict) -> list[Verdict]:
    """The closing table: the paper's claim (``priorlib.compendium.paper``), our number, the outcome.

    The paper says upper-layer trajectories still do not localise well, so a localised path
    (:func:`trajectories_localise`) contradicts it."""
    t1 = q1["test"]["vocab"]
    ov = q3["overlap"]
    one, one_why = decide.one_cluster(q3["separation"])
    return [
        Verdict("Sentence paths in the embedding space are jumpy: steps only slightly shorter than a random walk's",
                f"median step ratio real/random walk {t1['median_ratio']:.2f}, Cliff's delta "
                f"{t1['cliffs_delta']:+.2f}, {100 * t1['share_shorter']:.0f}% of texts shorter",
                outcome_of(0.5 <= t1["median_ratio"] < 1.0 and t1["p_value"] < 0.05), claim_id="embedding-paths-jumpy"),
        Verdict("Activation trajectories at the upper layers still do not localise",
                f"upper-layer median step ratio {q2['upper_median_ratio']:.2f} (embeddings "
                f"{q2['embed_median_ratio']:.2f}), Cliff's delta {q2['upper_cliffs_delta']:+.2f}; localised when "
                f"below 1 and below the embeddings' ratio",
                outcome_of(not trajectories_localise(q2)), claim_id="activation-paths-not-local"),
        Verdict("SQuAD activations do not diverge far from web text (C4): one cluster",
                f"web text vs SQuAD tokens at the last layer, `one_cluster`: {one_why}; k-NN mixing index "
                f"{ov['mixing']:.2f} (1 = fully mixed), linear probe {ov['probe_accuracy']:.2f}", one,
                claim_id="squad-near-web"),
        verdict_answers(qa),
        Verdict("a single unimodal cloud at every layer",
                f"{q4['n_bimodal']} of {q4['n_layers']} layers flagged bimodal", outcome_of(q4["n_bimodal"] == 0),
                claim_id="single-cloud"),
        verdict_q5(q5),
        verdict_modules(qm),
    ]


def verdict_q5(q5: dict) -> Verdict:
    """The task-cluster row, at the last layer: MATH separates from NLP and SQuAD shares one cluster with web
    text (``q5["separation"]``: :func:`decide.every` of the separation and :func:`decide.one_cluster`)."""
    math_sep, squad_sep = q5["separation"]["math_vs_nlp"], q5["separation"]["squad_vs_web"]
    one, one_why = decide.one_cluster(squad_sep)
    return Verdict("MATH far from web text, SQuAD close to it (T5-base)",
                   f"last layer, MATH vs NLP: {math_sep.reason}; SQuAD vs web, `one_cluster`: {one_why}",
                   decide.every([math_sep.outcome, one]), claim_id="task-clusters")


def fmt_p(p: float) -> str:
    """A p-value for prose: ``3.2e-05``; ``< 1e-300`` where it underflows to 0."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 1e-300" if p == 0 else f"{p:.1e}"


def ratio_phrase(ratio: float, what: str = "consecutive tokens", tol: float = 0.1) -> str:
    """Words for a median step ratio real / baseline, with the tolerance ``tol`` around 1 called "about as"."""
    if abs(ratio - 1.0) <= tol:
        return f"{what} are about as far apart as random ones (the paths are jumpy)"
    return f"{what} are {'closer together' if ratio < 1 else 'further apart'} than random ones"


def mixing_phrase(mixing: float) -> str:
    if mixing >= 0.8:
        return "largely overlap"
    if mixing >= 0.4:
        return "overlap partly"
    return "are mostly separate"


def plan(profile: str = "cpu") -> list[TrainConfig]:
    """Every config the notebook trains in ``profile``: none (the atlas captures activations; it trains no
    prompt, so it never calls ``run_all``)."""
    from priorlib.compendium.profiles import check_profile
    check_profile(profile)
    return []
