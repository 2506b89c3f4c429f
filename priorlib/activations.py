"""What to keep of the forward passes over many texts: every token, one mean per text, trajectories,
or the compact per-point summaries of the activation atlas.

    from priorlib.activations import capture, text_means
    rows = capture(model, tok, texts, ["layers.5.resid_post"])["layers.5.resid_post"]  # [N_tokens, d] float16
    means = text_means(model, tok, texts, ["layers.5.resid_post"], start=1)             # {point: [n_texts, d]}

Every function here reads :func:`priorlib.hooks.iter_activations` (bf16 autocast, no grad, forward
stopped after the deepest point). Per-text means have one implementation, :class:`TextMeans`: the mean
over a window of positions ``[start, stop)`` of each text. ``start=1`` leaves out the first position,
where a decoder LM gathers very large activations (the attention sink) whose weight ``1/T`` would
otherwise tell texts apart by their length.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .hooks import iter_activations, parse_point

__all__ = ["TextMeans", "text_means", "capture", "summaries", "cached_summaries"]

class TextMeans:
    """Mean activation of each text over its positions ``[start, stop)``, accumulated batch by batch.

        means = TextMeans(len(texts), start=1)
        for acts, mask, _, idx in iter_activations(model, tok, texts, points):
            means.add(acts, mask, idx)
        means["layers.3.resid_pre"]          # [len(texts), d] float32

    A text without a position in the window (fewer than ``start + 1`` tokens) keeps the mean of all its
    tokens.
    """

    def __init__(self, n_texts: int, start: int = 0, stop: int | None = None):
        if start < 0 or (stop is not None and stop <= start):
            raise ValueError(f"TextMeans needs 0 <= start < stop, got start={start}, stop={stop}")
        self.n_texts, self.start, self.stop = n_texts, start, stop
        self.means: dict[str, torch.Tensor] = {}

    def weights(self, mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, 1]`` float: 1 on the real positions inside the window (all real ones if none is)."""
        pos = torch.arange(mask.shape[1], device=mask.device)
        w = mask & (pos >= self.start)
        if self.stop is not None:
            w &= pos < self.stop
        empty = w.sum(1) == 0
        w[empty] = mask[empty]
        return w[..., None].float()

    def add(self, acts: dict[str, torch.Tensor], mask: torch.Tensor, idx: Sequence[int]) -> None:
        """Fold one batch in: ``acts[point] [B, T, d]``, ``mask [B, T]`` of real tokens, row ``b`` is text ``idx[b]``."""
        w = self.weights(mask)
        rows = torch.as_tensor(list(idx))
        for p, a in acts.items():
            m = ((a.float() * w).sum(1) / w.sum(1)).cpu()  # [B, d]
            if p not in self.means:
                self.means[p] = torch.full((self.n_texts, a.shape[-1]), float("nan"))
            self.means[p][rows] = m

    def __getitem__(self, point: str) -> torch.Tensor:
        return self.means[point]


def text_means(model, tok, texts: list[str], points: list[str], *, start: int = 0, stop: int | None = None,
               batch_size: int = 16, max_length: int = 256, dtype=torch.bfloat16, bucket: int | None = None,
               progress: bool = False) -> dict[str, torch.Tensor]:
    """``{point: [len(texts), d]}`` float32: each text's mean activation over positions ``[start, stop)``."""
    means = TextMeans(len(texts), start, stop)
    for acts, mask, _, idx in iter_activations(model, tok, texts, points, batch_size=batch_size, max_length=max_length,
                                               dtype=dtype, bucket=bucket, progress=progress, desc="text means"):
        means.add(acts, mask, idx)
    return means.means


def capture(model, tok, texts: list[str], points: list[str], *, reduce: str = "tokens",
            batch_size: int = 16, max_length: int = 256, dtype=torch.bfloat16, progress: bool = True,
            stats: bool = False, max_rows: int | None = None, seed: int = 0) -> dict:
    """Capture activations at ``points`` for ``texts``.

    reduce:
      - ``"tokens"``: every real token's vector, ``[N_tokens, d]`` float16 per point (subsampled to
        ``max_rows`` with a fixed seed when given), plus ``text_index`` / ``position`` ``[N_tokens]``.
      - ``"mean"``: one mean vector per text over all its tokens, ``[len(texts), d]`` float32
        (:class:`TextMeans` with ``start=0``).
      - ``"trajectory"``: a list, per text, of ``[T_i, d]`` float16 tensors (token trajectories).
    With ``stats=True`` a :class:`priorlib.stats.StreamingGaussian` per point sees *every* token
    (float64 accumulation), so a Gaussian fits all of them even when only a subsample is kept.
    """
    if reduce not in ("tokens", "mean", "trajectory"):
        raise ValueError(f"reduce must be 'tokens', 'mean' or 'trajectory', not {reduce!r}")
    names = [parse_point(model, p).name for p in points]
    out: dict = {"points": names}
    if stats:
        from .stats import StreamingGaussian
        out["stats"] = {n: StreamingGaussian() for n in names}
    chunks: dict[str, list] = {n: [] for n in names}
    text_index, position = [], []
    traj: dict[str, list] = {n: [None] * len(texts) for n in names}
    means = TextMeans(len(texts))
    for acts, mask, _, idx in iter_activations(model, tok, texts, names, batch_size=batch_size,
                                               max_length=max_length, dtype=dtype, progress=progress):
        lengths = mask.sum(1)
        if reduce == "mean":
            means.add(acts, mask, idx)
        for n in names:
            a = acts[n]  # [B, T, d]
            if stats:
                out["stats"][n].update(a[mask].double())
            if reduce == "tokens":
                chunks[n].append(a[mask].half().cpu())  # [n_real, d]
            elif reduce == "trajectory":
                for row, i in enumerate(idx):
                    traj[n][i] = a[row, : lengths[row]].half().cpu()
        if reduce == "tokens":
            for row, i in enumerate(idx):
                L = int(lengths[row])
                text_index.append(torch.full((L,), i))
                position.append(torch.arange(L))
    if reduce == "tokens":
        ti, pos = torch.cat(text_index), torch.cat(position)
        keep = None
        if max_rows is not None and len(ti) > max_rows:
            g = torch.Generator().manual_seed(seed)
            keep = torch.randperm(len(ti), generator=g)[:max_rows].sort().values
        for n in names:
            x = torch.cat(chunks[n])
            out[n] = x if keep is None else x[keep]
        out["text_index"] = ti if keep is None else ti[keep]
        out["position"] = pos if keep is None else pos[keep]
    elif reduce == "mean":
        out.update(means.means)
    else:
        out.update(traj)
    return out


def _token_lengths(tok, texts: list[str], max_length: int) -> np.ndarray:
    enc = tok(texts, add_special_tokens=False, truncation=True, max_length=max_length)
    return np.array([len(x) for x in enc["input_ids"]], dtype=np.int64)


def summaries(model, tok, texts: list[str], points: list[str], *, max_length: int, batch_size: int,
              token_sample: int, n_paths: int, seed: int, skip_first: int = 1, keep_all: Sequence[str] = (),
              desc: str = "capture") -> dict[str, np.ndarray]:
    """One pass over ``texts`` (bf16 autocast, early stop, fixed batch shapes) keeping compact per-point summaries.

    Positions ``< skip_first`` are left out of every statistic (the attention sink). For each point
    ``p`` the result holds

    - ``mean|p`` ``[n_texts, d]`` float32: mean activation over the kept positions of each text (:class:`TextMeans`)
    - ``steps|p`` float32: ``|x_{t+1} - x_t|`` over consecutive kept positions, all texts concatenated
    - ``shuffled|p`` float32: the same for each text's tokens in a random order (same permutation at
      every point), a baseline that keeps the tokens and breaks the order
    - ``sample|p`` ``[m, d]`` float16: ``token_sample`` rows drawn uniformly from all kept tokens
      (``sample_text`` / ``sample_pos`` say where they come from)
    - ``path|p`` float16: every kept row of the first ``n_paths`` texts (``path_text`` / ``path_pos``)
    - ``all|p`` float16 for points in ``keep_all``: every kept row (``all_text`` / ``all_pos``)

    and ``lengths [n_texts]``: kept positions per text. Plain arrays, so :func:`priorlib.cache.cached` stores them.
    """
    from .metrics.placement import trajectory_step_lengths

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
    perms = [torch.from_numpy(rng.permutation(int(k))) for k in kept]

    means = TextMeans(len(texts), start=skip_first)
    out: dict[str, np.ndarray] = {}
    steps = {p: [None] * len(texts) for p in points}
    shuffled = {p: [None] * len(texts) for p in points}
    sample: dict[str, np.ndarray] = {}
    paths = {p: [] for p in points}
    path_text, path_pos = [], []
    alls = {p: [None] * len(texts) for p in keep_all}
    for acts, mask, _, idx in iter_activations(model, tok, texts, points, max_length=max_length, batch_size=batch_size,
                                               bucket=32, desc=desc):
        acts = {k: v.cpu() for k, v in acts.items()}
        mask = mask.cpu()
        means.add(acts, mask, idx)
        lens = mask.sum(1).tolist()
        for row, i in enumerate(idx):
            L = int(lens[row])
            assert L == full[i], "tokenisation differs between the length pass and the capture"
            if i < n_paths:
                path_text.append(np.full(L - skip_first, i))
                path_pos.append(np.arange(skip_first, L))
            slots = [(sample_slot[(i, q)], q) for q in range(skip_first, L) if (i, q) in sample_slot]
            for p in points:
                x = acts[p][row, skip_first:L]  # [kept, d]
                if p not in sample:
                    sample[p] = np.zeros((len(chosen), x.shape[1]), dtype=np.float16)
                steps[p][i] = trajectory_step_lengths(x).float().numpy()
                shuffled[p][i] = trajectory_step_lengths(x[perms[i]]).float().numpy()
                for k, q in slots:
                    sample[p][k] = x[q - skip_first].half().numpy()
                if i < n_paths:
                    paths[p].append(x.half().numpy())
                if p in alls:
                    alls[p][i] = x.half().numpy()
    for p in points:
        out[f"mean|{p}"] = means[p].numpy()
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


def cached_summaries(name: str, params: dict, model, tok, texts: list[str], points: list[str], **kw) -> dict:
    """:func:`summaries` through :func:`priorlib.cache.cached`; ``params`` plus a fingerprint of the texts key the entry."""
    from .cache import cached, fingerprint

    key = dict(params, texts=fingerprint(texts), points=list(points),
               **{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in kw.items() if k != "desc"})
    return cached(name, key, lambda: summaries(model, tok, texts, points, **kw))

