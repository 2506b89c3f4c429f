"""The activation atlas of notebook 01 (paper section 4.1): trajectories, shapes and task clusters.

Everything the proof-of-concept notebook measures lives here; the notebook only calls and explains.

- **Settings** (:func:`settings`): the ``smoke`` / ``cpu`` / ``paper`` sizes of
  :mod:`priorlib.compendium.profiles`; a notebook parameter left at ``None`` takes the profile's value.
- **Capture** (:func:`collect`): one forward pass per data set, stopped after the deepest layer, that
  keeps per text and per hook point the mean activation, the consecutive step lengths (and those of
  the same tokens in shuffled order), a seeded sample of token rows, every row of chosen points, and
  whole trajectories of a few texts for drawing. Results are plain arrays so :func:`priorlib.cache.cached`
  can store them.
- **Steps** (:func:`step_test`, :func:`token_step_test`, :func:`layer_step_tests`): real trajectories
  against random walks of the same lengths, pooled (Mann-Whitney U, Cliff's delta, median ratio, from
  :mod:`priorlib.metrics.placement`) and per text (paired Wilcoxon on per-text medians).
- **Shape** (:func:`unimodality`, :func:`layer_unimodality`): BIC of 1- vs 2-component Gaussian
  mixtures on a PCA projection, the density valley between the two fitted modes, Sarle's
  bimodality coefficient.
- **Overlap** (:func:`overlap`, :func:`answer_vs_question`): how much two token clouds mix (k-NN
  mixing index, linear probe) and where SQuAD answer tokens sit relative to their question.
- **Clusters** (:func:`cluster_scores`, :func:`layer_cluster_scores`): silhouette and held-out linear
  probe accuracy per layer; :func:`tsne` / :func:`pca2` for the pictures.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from priorlib.cache import cached, fingerprint
from priorlib.metrics.placement import compare_steps, random_walk_step_lengths, trajectory_step_lengths
from priorlib.compendium import profiles
from priorlib.compendium.paths import repo_root, results_dir
from priorlib.compendium.verdicts import Outcome, Verdict

STEM = "01_proof_of_concept"

__all__ = [
    "Profile", "settings", "hook_points", "depth_labels", "collect",
    "squad_texts_with_roles", "ROLE_NAMES", "token_step_test", "step_test", "layer_step_tests",
    "unimodality", "layer_unimodality", "overlap", "answer_vs_question", "cluster_scores",
    "layer_cluster_scores", "tsne", "pca2", "repo_root", "set_data_env",
]

SEP = "|"  # key separator in the flat array dicts: "steps|layers.3.resid_post"


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


def set_data_env() -> str:
    """Point ``PRIORLIB_DATA`` at ``<repo>/../shared/data`` when it is unset; return the value in use."""
    if not os.environ.get("PRIORLIB_DATA"):
        shared = repo_root().parent / "shared" / "data"
        if shared.is_dir():
            os.environ["PRIORLIB_DATA"] = str(shared)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    return os.environ.get("PRIORLIB_DATA", "")


def hook_points(model, layers: Sequence[int] | None) -> list[str]:
    """``["embed", "layers.i.resid_post", ...]`` for the chosen blocks (all when ``None``)."""
    from priorlib import arch

    n = arch.n_layers(model)
    idx = list(range(n)) if layers is None else arch.resolve_layers(model, layers)
    return ["embed"] + [f"layers.{i}.resid_post" for i in idx]


def depth_of(point: str) -> int:
    """0 for the embeddings, ``i + 1`` for the output of block ``i`` (the ``hidden_states`` index)."""
    return 0 if point == "embed" else int(point.split(".")[1]) + 1


def depth_labels(points: Sequence[str]) -> list[int]:
    return [depth_of(p) for p in points]


# ---------------------------------------------------------------------------------------------
# capture
# ---------------------------------------------------------------------------------------------

def _token_lengths(tok, texts: list[str], max_length: int) -> np.ndarray:
    enc = tok(texts, add_special_tokens=False, truncation=True, max_length=max_length)
    return np.array([len(x) for x in enc["input_ids"]], dtype=np.int64)


def iter_padded(model, tok, texts: list[str], points: list[str], *, max_length: int, batch_size: int,
                bucket: int = 32, desc: str = "capture"):
    """Yield ``(acts, lengths, indices)`` per batch, every batch padded to a fixed shape.

    Like :func:`priorlib.hooks.iter_activations` (bf16 autocast, no grad, right padding without an
    attention mask, forward stopped after the deepest point), but each batch is padded to
    ``batch_size`` rows and to a multiple of ``bucket`` positions. On CPU, oneDNN compiles kernels per
    input shape, and with every batch a new length that compilation cost more than the forward itself;
    a handful of shapes removes it. Padding after the real tokens never changes them (causal attention).
    """
    from priorlib.hooks import text_activations

    device = next(model.parameters()).device
    dtype = torch.bfloat16
    enc = tok(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(enc[i]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch"):
        idx = order[start:start + batch_size]
        T = max(len(enc[i]) for i in idx)
        T = int(math.ceil(T / bucket) * bucket)
        ids = torch.full((batch_size, T), pad, dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(enc[i])] = torch.tensor(enc[i])
        acts = {k: v[: len(idx)].float().cpu()
                for k, v in text_activations(model, tok, ids.to(device), points, dtype).items()}
        yield acts, [len(enc[i]) for i in idx], idx


def collect(model, tok, texts: list[str], points: list[str], *, max_length: int, batch_size: int,
            token_sample: int, n_paths: int, seed: int, skip_first: int = 1, keep_all: Sequence[str] = (),
            desc: str = "capture") -> dict[str, np.ndarray]:
    """One pass over ``texts`` (bf16 autocast, early stop) keeping compact per-point summaries.

    Positions ``< skip_first`` are left out of every statistic (the first token of a decoder LM
    gathers huge activations, the attention sink). For each point ``p`` the result holds

    - ``mean|p`` ``[n_texts, d]`` float32: mean activation over the kept positions of each text
    - ``steps|p`` float32: ``|x_{t+1} - x_t|`` over consecutive kept positions, all texts concatenated
    - ``shuffled|p`` float32: the same for each text's tokens in a random order (same permutation at
      every point), a baseline that keeps the tokens and breaks the order
    - ``sample|p`` ``[m, d]`` float16: ``token_sample`` rows drawn uniformly from all kept tokens
      (``sample_text`` / ``sample_pos`` say where they come from)
    - ``path|p`` float16: every kept row of the first ``n_paths`` texts (``path_text`` / ``path_pos``)
    - ``all|p`` float16 for points in ``keep_all``: every kept row (``all_text`` / ``all_pos``)

    and ``lengths [n_texts]``: kept positions per text.
    """
    full = _token_lengths(tok, texts, max_length)
    kept = np.maximum(full - skip_first, 0)
    if (kept < 2).any():
        bad = int(np.flatnonzero(kept < 2)[0])
        raise ValueError(f"text {bad} has {full[bad]} tokens; every text needs at least {skip_first + 2}")
    rng = np.random.default_rng(seed)
    total = int(kept.sum())
    chosen = np.sort(rng.choice(total, size=min(token_sample, total), replace=False))
    starts = np.concatenate([[0], np.cumsum(kept)[:-1]])
    text_of = np.searchsorted(starts, chosen, side="right") - 1
    pos_of = chosen - starts[text_of] + skip_first
    sample_slot = {(int(t), int(p)): k for k, (t, p) in enumerate(zip(text_of, pos_of))}
    perms = [rng.permutation(int(k)) for k in kept]

    d = None
    out: dict[str, np.ndarray] = {}
    steps = {p: [None] * len(texts) for p in points}
    shuffled = {p: [None] * len(texts) for p in points}
    sample = {p: None for p in points}
    paths = {p: [] for p in points}
    path_text, path_pos = [], []
    alls = {p: [None] * len(texts) for p in keep_all}
    for acts, lens, idx in iter_padded(model, tok, texts, points, max_length=max_length,
                                       batch_size=batch_size, desc=desc):
        for row, i in enumerate(idx):
            L = int(lens[row])
            assert L == full[i], "tokenisation differs between the length pass and the capture"
            positions = range(skip_first, L)
            if i < n_paths:
                path_text.append(np.full(L - skip_first, i))
                path_pos.append(np.arange(skip_first, L))
            slots = [(sample_slot[(i, q)], q) for q in positions if (i, q) in sample_slot]
            for p in points:
                x = acts[p][row, skip_first:L].float()  # [kept, d]
                if d is None:
                    d = x.shape[1]
                if sample[p] is None:
                    sample[p] = np.zeros((len(chosen), d), dtype=np.float16)
                    out[f"mean|{p}"] = np.zeros((len(texts), d), dtype=np.float32)
                out[f"mean|{p}"][i] = x.mean(0).numpy()
                steps[p][i] = trajectory_step_lengths(x).float().numpy()
                shuffled[p][i] = trajectory_step_lengths(x[torch.from_numpy(perms[i])]).float().numpy()
                for k, q in slots:
                    sample[p][k] = x[q - skip_first].half().numpy()
                if i < n_paths:
                    paths[p].append(x.half().numpy())
                if p in alls:
                    alls[p][i] = x.half().numpy()
    for p in points:
        out[f"steps|{p}"] = np.concatenate(steps[p])
        out[f"shuffled|{p}"] = np.concatenate(shuffled[p])
        out[f"sample|{p}"] = sample[p]
        if n_paths:
            order = np.argsort(np.concatenate(path_text), kind="stable")
            out[f"path|{p}"] = np.concatenate(paths[p])[order]
        if p in alls:
            out[f"all|{p}"] = np.concatenate(alls[p])
    if n_paths:
        pt, pp = np.concatenate(path_text), np.concatenate(path_pos)
        order = np.argsort(pt, kind="stable")
        out["path_text"], out["path_pos"] = pt[order], pp[order]
    if keep_all:
        out["all_text"] = np.concatenate([np.full(int(k), i) for i, k in enumerate(kept)])
        out["all_pos"] = np.concatenate([np.arange(skip_first, int(f)) for f in full])
    out["sample_text"], out["sample_pos"] = text_of, pos_of
    out["lengths"] = kept
    return out


def cached_collect(name: str, params: dict, model, tok, texts: list[str], points: list[str], **kw) -> dict:
    """:func:`collect` through the artifact cache; ``params`` plus a hash of the texts key the entry."""
    key = dict(params, texts=fingerprint(np.frombuffer("\x00".join(texts).encode(), dtype=np.uint8)),
               points=list(points), **{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in kw.items()
                                       if k != "desc"})
    return cached(name, key, lambda: collect(model, tok, texts, points, **kw))


def per_text(values: np.ndarray, lengths: np.ndarray, minus: int = 1) -> list[np.ndarray]:
    """Split a concatenation of per-text arrays with ``lengths - minus`` entries each."""
    cuts = np.cumsum(np.asarray(lengths) - minus)[:-1]
    return np.split(np.asarray(values), cuts)


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
# step lengths: trajectories vs random walks
# ---------------------------------------------------------------------------------------------

def step_test(real: Sequence[np.ndarray], random_: Sequence[np.ndarray]) -> dict:
    """Real step lengths against a baseline, one array per text in both (same lengths).

    Pooled: :func:`priorlib.metrics.placement.compare_steps` (two-sided Mann-Whitney U, Cliff's delta
    ``P(real > random) - P(real < random)``, ratio of medians). Per text (steps within a text are not
    independent, texts are): the median step of each text against the median of its own baseline walk,
    ``share_shorter`` = share of texts whose real median is smaller, paired Wilcoxon signed-rank p.
    """
    from scipy.stats import wilcoxon

    pooled = compare_steps(torch.from_numpy(np.concatenate(real)), torch.from_numpy(np.concatenate(random_)))
    med_r = np.array([np.median(a) for a in real])
    med_b = np.array([np.median(b) for b in random_])
    diff = med_r - med_b
    p_text = float(wilcoxon(med_r, med_b).pvalue) if len(real) >= 2 and np.any(diff != 0) else float("nan")
    return dict(pooled, n_texts=len(real), share_shorter=float(np.mean(diff < 0)), p_value_per_text=p_text,
                median_text_ratio=float(np.median(med_r / med_b)))


def _walks(pool: torch.Tensor, lengths: np.ndarray, gen: torch.Generator) -> list[np.ndarray]:
    steps = random_walk_step_lengths(pool, [int(k) for k in lengths], gen).float().numpy()
    return per_text(steps, lengths)


def token_step_test(embeddings: torch.Tensor, token_ids: Sequence[Sequence[int]], seed: int) -> dict:
    """Token-embedding trajectories of texts against two baselines of the same lengths.

    - ``vocab``: random walks over the whole vocabulary (rows drawn uniformly from ``embeddings [V, d]``)
    - ``unigram``: random walks over the token occurrences of all texts pooled (the corpus's own
      token frequencies, no order)
    - ``shuffled``: the text's own tokens in a random order (keeps the text's tokens, breaks the order)

    Returns ``{"vocab"|"unigram"|"shuffled": step_test, "steps", "vocab_steps"}`` (arrays for plots).
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    emb = embeddings.float()
    real, shuf = [], []
    lengths = np.array([len(t) for t in token_ids])
    for ids in token_ids:
        x = emb[torch.as_tensor(list(ids))]
        real.append(trajectory_step_lengths(x).float().numpy())
        shuf.append(trajectory_step_lengths(x[torch.from_numpy(rng.permutation(len(ids)))]).float().numpy())
    walk = _walks(emb, lengths, gen)
    pooled = emb[torch.as_tensor([t for ids in token_ids for t in ids])]
    uni = _walks(pooled, lengths, gen)
    return {"vocab": step_test(real, walk), "unigram": step_test(real, uni), "shuffled": step_test(real, shuf),
            "steps": np.concatenate(real), "vocab_steps": np.concatenate(walk)}


def layer_step_tests(res: dict, points: Sequence[str], seed: int) -> list[dict]:
    """Per point: real activation steps vs random walks over the token sample (and vs shuffled order).

    The random walk of a text with ``k`` kept tokens visits ``k`` rows drawn uniformly from the point's
    token sample (tokens of all texts), i.e. it jumps anywhere in that layer's activation cloud. Step
    lengths are also divided by the cloud's RMS distance to its mean (``scale``) for comparing layers.
    """
    rows = []
    lengths = res["lengths"]
    for p in tqdm(points, desc="step tests", unit="layer"):
        gen = torch.Generator().manual_seed(seed)
        pool = torch.from_numpy(res[f"sample|{p}"].astype(np.float32))
        real = per_text(res[f"steps|{p}"], lengths)
        walk = _walks(pool, lengths, gen)
        t_walk = step_test(real, walk)
        t_shuf = step_test(real, per_text(res[f"shuffled|{p}"], lengths))
        scale = float((pool - pool.mean(0)).pow(2).sum(1).mean().sqrt())
        rows.append({"point": p, "depth": depth_of(p), "median_ratio": t_walk["median_ratio"],
                     "cliffs_delta": t_walk["cliffs_delta"], "p_value": t_walk["p_value"],
                     "share_shorter": t_walk["share_shorter"], "p_value_per_text": t_walk["p_value_per_text"],
                     "median_ratio_shuffled": t_shuf["median_ratio"], "cliffs_delta_shuffled": t_shuf["cliffs_delta"],
                     "median_step": t_walk["median_real"], "median_walk_step": t_walk["median_random"],
                     "cloud_rms": scale, "median_step_rel": t_walk["median_real"] / scale if scale else float("nan")})
    return rows


# ---------------------------------------------------------------------------------------------
# shape: unimodality
# ---------------------------------------------------------------------------------------------

def pca2(x: np.ndarray, n_components: int = 2, fit_on: np.ndarray | None = None, seed: int = 0):
    """``(coords [n, k], pca)``: PCA fitted on ``fit_on`` (default ``x``), applied to ``x``."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, random_state=seed).fit(np.asarray(fit_on if fit_on is not None else x,
                                                                            dtype=np.float64))
    return pca.transform(np.asarray(x, dtype=np.float64)), pca


def _sarle_bc(v: np.ndarray) -> float:
    """Sarle's bimodality coefficient ``(g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3)))``; > 5/9 hints at two modes."""
    from scipy.stats import kurtosis, skew

    n = len(v)
    g, k = skew(v, bias=False), kurtosis(v, bias=False)
    return float((g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def unimodality(x: np.ndarray, *, n_components: int = 2, seed: int = 0, bic_margin: float = 10.0,
                min_weight: float = 0.05, min_valley: float = 0.1, massive_factor: float = 4.0) -> dict:
    """Is the cloud ``x [n, d]`` one mode or two, on its first ``n_components`` principal components?

    Rows whose norm exceeds ``massive_factor`` times the median norm (massive-activation tokens: a
    handful of tokens that carry norms of ten times the rest in mid and upper layers) are set aside
    first and reported as ``share_massive``; otherwise two or three such rows take the first principal
    components and a mixture component to themselves and the test says nothing about the bulk.
    Fits Gaussian mixtures with 1 and 2 components (full covariance) to the standardised projection.
    ``delta_bic = BIC_1 - BIC_2`` (> 0: two components fit better). A better 2-component fit alone is
    not two modes (a heavy-tailed single mode is also fitted better by two Gaussians), so the fitted
    2-component density is evaluated on the segment between its means: ``valley_depth = 1 -
    min(segment) / min(density at the two means)`` is 0 when the density has no dip between them.
    ``bimodal`` = ``delta_bic > bic_margin`` and ``valley_depth > min_valley`` and the smaller
    component holds at least ``min_weight`` of the points. Also reports Sarle's coefficient on PC1.
    """
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    massive = norms > massive_factor * np.median(norms)
    x = x[~massive]
    z, pca = pca2(x, n_components, seed=seed)
    z = (z - z.mean(0)) / z.std(0)
    g1 = GaussianMixture(1, covariance_type="full", random_state=seed).fit(z)
    g2 = GaussianMixture(2, covariance_type="full", random_state=seed, n_init=2).fit(z)
    delta = float(g1.bic(z) - g2.bic(z))
    m0, m1 = g2.means_
    seg = m0[None, :] + np.linspace(0, 1, 201)[:, None] * (m1 - m0)[None, :]
    dens = np.exp(g2.score_samples(seg))
    valley = float(1.0 - dens.min() / min(dens[0], dens[-1])) if min(dens[0], dens[-1]) > 0 else 0.0
    w_min = float(g2.weights_.min())
    return {"delta_bic": delta, "delta_bic_per_point": delta / len(z), "valley_depth": valley,
            "min_weight": w_min, "sarle_bc": _sarle_bc(z[:, 0]), "share_massive": float(massive.mean()),
            "explained_variance": float(pca.explained_variance_ratio_.sum()),
            "bimodal": bool(delta > bic_margin and valley > min_valley and w_min >= min_weight)}


def layer_unimodality(res: dict, points: Sequence[str], seed: int, **kw) -> list[dict]:
    rows = []
    for p in tqdm(points, desc="unimodality", unit="layer"):
        r = unimodality(res[f"sample|{p}"].astype(np.float32), seed=seed, **kw)
        rows.append({"point": p, "depth": depth_of(p), **r})
    return rows


# ---------------------------------------------------------------------------------------------
# overlap of two clouds; SQuAD answers vs questions
# ---------------------------------------------------------------------------------------------

def _probe(x: np.ndarray, y: np.ndarray, seed: int, test_size: float = 0.3) -> float:
    """Held-out balanced accuracy of a standardised logistic-regression probe (stratified split)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(xtr, ytr)
    return float(balanced_accuracy_score(yte, clf.predict(xte)))


def overlap(a: np.ndarray, b: np.ndarray, *, k: int = 10, n_pca: int = 50, seed: int = 0) -> dict:
    """How much two token clouds ``a [n_a, d]``, ``b [n_b, d]`` overlap.

    Both are cut to the same size ``m`` (seeded), projected on the top ``n_pca`` principal components of
    the pooled rows, and each row's ``k`` nearest neighbours are looked up. ``mixing = (share of
    neighbours from the other cloud) / 0.5``: 1 for two samples of one distribution, 0 for disjoint
    clouds. ``probe_accuracy``: held-out balanced accuracy of a linear probe telling them apart (0.5 =
    indistinguishable).
    """
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    m = min(len(a), len(b))
    a = np.asarray(a, dtype=np.float32)[rng.choice(len(a), m, replace=False)]
    b = np.asarray(b, dtype=np.float32)[rng.choice(len(b), m, replace=False)]
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(m, int), np.ones(m, int)]
    z, _ = pca2(x, min(n_pca, x.shape[1], len(x) - 1), seed=seed)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(z)
    _, idx = nn.kneighbors(z)
    other = (y[idx[:, 1:]] != y[:, None]).mean()
    return {"n_each": m, "k": k, "mixing": float(other / 0.5), "probe_accuracy": _probe(x, y, seed)}


def answer_vs_question(rows: np.ndarray, text: np.ndarray, pos: np.ndarray, roles: Sequence[np.ndarray],
                       centre: np.ndarray | None = None) -> dict:
    """Per SQuAD prompt: are the answer tokens closer to the question than the rest of the context is?

    With ``q`` the mean of the prompt's question tokens, ``d(x) = 1 - cos(x - c, q - c)`` (``c`` =
    ``centre``, e.g. the web-text mean, so the shared offset of all activations does not dominate the
    angle). Per prompt: median ``d`` over answer tokens and over the other context tokens. Returns the
    share of prompts whose answer is closer, the paired Wilcoxon p and the median ratio answer / context.
    """
    from scipy.stats import wilcoxon

    rows = np.asarray(rows, dtype=np.float64)
    c = np.zeros(rows.shape[1]) if centre is None else np.asarray(centre, dtype=np.float64)
    d_ans, d_ctx = [], []
    for i, role in enumerate(roles):
        sel = text == i
        r = role[pos[sel]]
        x = rows[sel] - c
        q = x[r == 2].mean(0)
        cos = (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q) + 1e-12)
        if (r == 1).any() and (r == 0).any():
            d_ans.append(np.median(1 - cos[r == 1]))
            d_ctx.append(np.median(1 - cos[r == 0]))
    d_ans, d_ctx = np.array(d_ans), np.array(d_ctx)
    p = float(wilcoxon(d_ans, d_ctx).pvalue) if len(d_ans) >= 2 else float("nan")
    return {"n_prompts": len(d_ans), "share_answer_closer": float(np.mean(d_ans < d_ctx)), "p_value": p,
            "median_dist_answer": float(np.median(d_ans)), "median_dist_context": float(np.median(d_ctx)),
            "median_ratio": float(np.median(d_ans / d_ctx)), "d_answer": d_ans, "d_context": d_ctx}


# ---------------------------------------------------------------------------------------------
# task clusters
# ---------------------------------------------------------------------------------------------

def cluster_scores(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Silhouette (euclidean, on standardised features) and held-out linear-probe balanced accuracy.

    ``labels`` is any array of class names; silhouette is in [-1, 1] (near 0: overlapping clusters,
    near 1: compact and far apart).
    """
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    z = StandardScaler().fit_transform(np.asarray(x, dtype=np.float64))
    return {"silhouette": float(silhouette_score(z, labels, random_state=seed)),
            "probe_accuracy": _probe(np.asarray(x, dtype=np.float64), labels, seed)}


def layer_cluster_scores(means: dict[str, np.ndarray], tasks: np.ndarray, points: Sequence[str],
                         nlp: Sequence[str] = ("web", "squad"), seed: int = 0) -> list[dict]:
    """Per point: MATH vs NLP (web + SQuAD) over all samples, and SQuAD vs web over those two only."""
    tasks = np.asarray(tasks)
    is_nlp = np.isin(tasks, list(nlp))
    two = np.isin(tasks, ["web", "squad"])
    rows = []
    for p in tqdm(points, desc="cluster scores", unit="layer"):
        x = means[p]
        mn = cluster_scores(x, np.where(is_nlp, "nlp", "math"), seed)
        sw = cluster_scores(x[two], tasks[two], seed)
        rows.append({"point": p, "depth": depth_of(p),
                     "silhouette_math_vs_nlp": mn["silhouette"], "probe_math_vs_nlp": mn["probe_accuracy"],
                     "silhouette_squad_vs_web": sw["silhouette"], "probe_squad_vs_web": sw["probe_accuracy"]})
    return rows


def tsne(x: np.ndarray, *, perplexity: float, seed: int, max_iter: int = 1000, n_pca: int = 50,
         name: str = "tsne", params: dict | None = None) -> np.ndarray:
    """2-D t-SNE (sklearn, Barnes-Hut, PCA init) after a PCA to ``n_pca`` dims, cached by the inputs.

    The perplexity is capped at ``(n - 1) / 3`` (sklearn's requirement) for small inputs.
    """
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float32)
    perp = float(min(perplexity, max(2.0, (len(x) - 1) / 3.0)))
    key = dict(params or {}, data=fingerprint(x), perplexity=perp, seed=seed, max_iter=max_iter, n_pca=n_pca)

    def compute():
        t0 = time.perf_counter()
        z = x
        if x.shape[1] > n_pca and len(x) > n_pca:
            z, _ = pca2(x, n_pca, seed=seed)
        emb = TSNE(2, perplexity=perp, init="pca", random_state=seed, max_iter=max_iter,
                   learning_rate="auto").fit_transform(np.asarray(z, dtype=np.float32))
        return {"xy": emb.astype(np.float32), "seconds": np.float64(time.perf_counter() - t0)}

    return cached(name, key, compute)["xy"]


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
    """:func:`collect` for web text, SQuAD and MATH (cached by model, sizes, seed and the texts)."""
    base = {"model": cfg.model, "seed": cfg.seed, "skip_first": cfg.skip_first, "capture_version": 2}
    last = points[-1]
    common = dict(batch_size=cfg.batch_size, seed=cfg.seed, skip_first=cfg.skip_first)
    return {
        "web": cached_collect("nb01-web", base, model, tok, inputs["web"], points, max_length=cfg.max_length,
                              token_sample=cfg.token_sample, n_paths=cfg.n_paths, desc="web text", **common),
        "squad": cached_collect("nb01-squad", base, model, tok, inputs["squad"], points,
                                max_length=cfg.squad_max_tokens, token_sample=cfg.token_sample, n_paths=0,
                                keep_all=[last], desc="SQuAD", **common),
        "math": cached_collect("nb01-math", base, model, tok, inputs["math"], points, max_length=cfg.max_length,
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
    pc, _ = pca2(x, fit_on=emb[torch.from_numpy(vocab)].numpy(), seed=cfg.seed)
    return {"test": test, "tsne": xy, "pca": pc, "n_vocab": len(vocab), "vocab_size": int(emb.shape[0]),
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
    xy_cloud, pca = pca2(cloud, seed=cfg.seed)
    xy_path = pca.transform(path.astype(np.float64))
    upper = df[df.point.isin(up)]
    emb_row = df[df.point == "embed"].iloc[0]
    return {"table": df, "upper": up, "shown": show, "cloud_xy": xy_cloud, "path_xy": xy_path,
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
    centre = web_rows.mean(0)
    avq = answer_vs_question(sq_rows, sq["all_text"], sq["all_pos"], roles, centre=centre)
    sq_role = np.concatenate([r[cfg.skip_first:] for r in roles])
    # the same overlap for the embeddings (layer 0), as a yardstick
    ov0 = overlap(caps["web"]["sample|embed"].astype(np.float32), sq["sample|embed"].astype(np.float32),
                  seed=cfg.seed)
    xy_web, pca = pca2(web_rows, seed=cfg.seed)
    xy_sq = pca.transform(sq_rows.astype(np.float64))
    return {"point": last, "overlap": ov, "overlap_embed": ov0, "answer_vs_question": avq,
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
    proj = {}
    for p in picks:
        x = caps["web"][f"sample|{p}"].astype(np.float32)
        norms = np.linalg.norm(x, axis=1)
        z, _ = pca2(x[norms <= 4.0 * np.median(norms)], seed=cfg.seed)  # massive-activation rows set aside, as in the test
        proj[p] = z
    return {"table": df, "n_layers": len(df), "n_bimodal": int(df.bimodal.sum()),
            "bimodal_points": list(flagged.point), "projections": proj,
            "median_delta_bic_per_point": float(df.delta_bic_per_point.median())}


def question5(caps: dict, inputs: dict, points: list[str], cfg: Profile) -> dict:
    """Mean activation per sample for web, SQuAD and the six MATH modules: t-SNE and separation scores."""
    import pandas as pd

    tasks = np.array(["web"] * len(inputs["web"]) + ["squad"] * len(inputs["squad"]) + list(inputs["math_module"]))
    means = {p: np.concatenate([caps[k][f"mean|{p}"] for k in ("web", "squad", "math")]) for p in points}
    df = pd.DataFrame(layer_cluster_scores(means, tasks, points, seed=cfg.seed))
    blocks = [p for p in points if p != "embed"]
    shown = list(dict.fromkeys([blocks[len(blocks) // 2], points[-1]]))
    maps = {p: tsne(means[p], perplexity=cfg.tsne_perplexity, seed=cfg.seed, max_iter=cfg.tsne_max_iter,
                    name="nb01-tsne-tasks", params={"model": cfg.model, "point": p}) for p in shown}
    last = df[df.point == points[-1]].iloc[0]
    return {"table": df, "tasks": tasks, "maps": maps, "point": points[-1],
            "silhouette_math_vs_nlp": float(last.silhouette_math_vs_nlp),
            "silhouette_squad_vs_web": float(last.silhouette_squad_vs_web),
            "probe_math_vs_nlp": float(last.probe_math_vs_nlp), "probe_squad_vs_web": float(last.probe_squad_vs_web),
            "share_layers_math_further": float((df.silhouette_math_vs_nlp > df.silhouette_squad_vs_web).mean())}


def verdicts(q1: dict, q2: dict, q3: dict, q4: dict, q5: dict) -> list[Verdict]:
    """The closing table: the paper's observation (as summarised in issue 5), our number, the outcome."""
    t1 = q1["test"]["vocab"]
    ov = q3["overlap"]
    return [
        Verdict("sentence paths on the embedding space are jumpy, steps slightly shorter than random walks",
                f"median step ratio real/random walk {t1['median_ratio']:.2f}, Cliff's delta "
                f"{t1['cliffs_delta']:+.2f}, {100 * t1['share_shorter']:.0f}% of texts shorter",
                Outcome.of(0.5 <= t1["median_ratio"] < 1.0 and t1["p_value"] < 0.05)),
        Verdict("activation trajectories at upper layers are localised",
                f"upper-layer median step ratio {q2['upper_median_ratio']:.2f} (embeddings "
                f"{q2['embed_median_ratio']:.2f}), Cliff's delta {q2['upper_cliffs_delta']:+.2f}",
                Outcome.of(q2["upper_median_ratio"] < 1.0 and q2["upper_median_ratio"] < q2["embed_median_ratio"])),
        Verdict("SQuAD activations overlap the web-text (C4) distribution",
                f"k-NN mixing index {ov['mixing']:.2f} (1 = fully mixed), linear probe "
                f"{ov['probe_accuracy']:.2f} balanced accuracy", Outcome.of(ov["mixing"] >= 0.5)),
        Verdict("a single unimodal cloud at every layer",
                f"{q4['n_bimodal']} of {q4['n_layers']} layers flagged bimodal", Outcome.of(q4["n_bimodal"] == 0)),
        verdict_q5(q5),
    ]


def verdict_q5(q5: dict) -> Verdict:
    """The task-cluster row: at the last layer MATH is further from NLP than SQuAD is from web text."""
    return Verdict("MATH far from web text, SQuAD close to it (T5-base)",
                   f"silhouette MATH vs NLP {q5['silhouette_math_vs_nlp']:.2f}, SQuAD vs web "
                   f"{q5['silhouette_squad_vs_web']:.2f} (last layer)",
                   Outcome.of(q5["silhouette_math_vs_nlp"] > q5["silhouette_squad_vs_web"]))


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
