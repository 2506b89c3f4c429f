"""Are token trajectories local? Real step lengths against random walks of the same lengths.

    from priorlib.metrics.trajectories import step_test, token_step_test
    t = token_step_test(embeddings, token_ids, seed=0)   # t["vocab"]["median_ratio"] < 1: shorter steps
    rows = layer_step_tests(summaries, points, seed=0)   # per hook point, from priorlib.activations.summaries

Pooled over all steps: Mann-Whitney U, Cliff's delta and the ratio of medians
(:func:`priorlib.metrics.placement.compare_steps`). Per text (steps within a text are not independent,
texts are): each text's median step against the median of its own baseline walk, paired Wilcoxon.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..hooks import depth_of
from .placement import compare_steps, random_walk_step_lengths, trajectory_step_lengths

__all__ = ["per_text", "step_test", "token_step_test", "layer_step_tests"]


def per_text(values: np.ndarray, lengths: np.ndarray, minus: int = 1) -> list[np.ndarray]:
    """Split a concatenation of per-text arrays with ``lengths - minus`` entries each."""
    cuts = np.cumsum(np.asarray(lengths) - minus)[:-1]
    return np.split(np.asarray(values), cuts)


def step_test(real: Sequence[np.ndarray], random_: Sequence[np.ndarray]) -> dict:
    """Real step lengths against a baseline, one array per text in both (same lengths).

    Pooled: :func:`priorlib.metrics.placement.compare_steps` (two-sided Mann-Whitney U, Cliff's delta
    ``P(real > random) - P(real < random)``, ratio of medians). Per text: ``share_shorter`` = share of
    texts whose median real step is smaller than their baseline's, paired Wilcoxon signed-rank p.
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
    """Token-embedding trajectories of texts against three baselines of the same lengths.

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
    """Per point of a :func:`priorlib.activations.summaries` result: real activation steps vs random walks
    over the point's token sample, and vs the same tokens in shuffled order.

    The random walk of a text with ``k`` kept tokens visits ``k`` rows drawn uniformly from the point's
    token sample (tokens of all texts), i.e. it jumps anywhere in that layer's activation cloud. Step
    lengths are also divided by the cloud's RMS distance to its mean (``cloud_rms``) to compare layers.
    """
    rows = []
    lengths = res["lengths"]
    for p in points:
        gen = torch.Generator().manual_seed(seed)
        pool = torch.from_numpy(res[f"sample|{p}"].astype(np.float32))
        real = per_text(res[f"steps|{p}"], lengths)
        t_walk = step_test(real, _walks(pool, lengths, gen))
        t_shuf = step_test(real, per_text(res[f"shuffled|{p}"], lengths))
        scale = float((pool - pool.mean(0)).pow(2).sum(1).mean().sqrt())
        rows.append({"point": p, "depth": depth_of(p), "median_ratio": t_walk["median_ratio"],
                     "cliffs_delta": t_walk["cliffs_delta"], "p_value": t_walk["p_value"],
                     "share_shorter": t_walk["share_shorter"], "p_value_per_text": t_walk["p_value_per_text"],
                     "median_ratio_shuffled": t_shuf["median_ratio"], "cliffs_delta_shuffled": t_shuf["cliffs_delta"],
                     "median_step": t_walk["median_real"], "median_walk_step": t_walk["median_random"],
                     "cloud_rms": scale, "median_step_rel": t_walk["median_real"] / scale if scale else float("nan")})
    return rows
