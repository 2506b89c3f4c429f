"""Where SQuAD answer tokens sit in activation space relative to their question.

    from priorlib.metrics.answers import answer_vs_question
    r = answer_vs_question(rows, text, pos, roles, centre=web_mean)   # r["share_answer_closer"]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["answer_vs_question"]


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
