"""Where prompt vectors sit relative to a reference (token embeddings or activations).

``placement_metrics`` answers "did the prompts land inside the pretrained cloud?" with
nearest-neighbour distances (L2 and cosine), the nearest tokens, the Mahalanobis distance and the
log-density percentile under the reference's Gaussian fit, and the share inside its 95% region;
the same statistics for reference rows themselves are the baseline. ``compare_steps`` tests
whether training trajectories move differently from random walks over the same rows.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch
from torch import Tensor

if TYPE_CHECKING:  # runtime import would be circular (priors.lowdensity uses nearest_neighbours)
    from ..priors.reference import Reference

__all__ = ["nearest_neighbours", "placement_metrics", "hdr_threshold", "trajectory_step_lengths",
           "random_walk_step_lengths", "compare_steps"]

_MAX_BLOCK = 1 << 24  # distance-matrix entries per chunk (64 MiB in float32)


def nearest_neighbours(queries: Tensor, rows: Tensor, k: int = 1, metric: str = "l2",
                       exclude: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """k nearest rows of each query, chunked: ``(dist [q, k], idx [q, k])``, nearest first.

    ``metric="l2"``: ``|q - r|_2`` (``torch.cdist``, matmul form); ``"cos"``: ``1 - cos(q, r)``.
    ``exclude: [q]`` long gives, per query, one row index to skip (its own row, for baselines).
    """
    if metric not in ("l2", "cos"):
        raise ValueError(f"metric must be l2 or cos, got {metric!r}")
    q, r = queries.float(), rows.float()  # [q, d], [N, d]
    if k > r.shape[0] - (exclude is not None):
        raise ValueError(f"k={k} is more than the {r.shape[0]} candidate rows")
    if metric == "cos":
        q = torch.nn.functional.normalize(q, dim=1)
        r = torch.nn.functional.normalize(r, dim=1)
    step = max(1, _MAX_BLOCK // r.shape[0])
    dists, idxs = [], []
    for start in range(0, q.shape[0], step):
        block = q[start:start + step]  # [b, d]
        if metric == "l2":
            dist = torch.cdist(block, r, compute_mode="use_mm_for_euclid_dist")  # [b, N]
        else:
            dist = 1.0 - block @ r.T
        if exclude is not None:
            dist[torch.arange(block.shape[0]), exclude[start:start + step]] = float("inf")
        k_extra = min(k + 4, dist.shape[1])  # a few spares: the matmul form is only ~1e-3 accurate
        _, i = torch.topk(dist, k_extra, dim=1, largest=False)  # [b, k + 4]
        cand = r[i]  # [b, k + 4, d]
        if metric == "l2":
            exact = (block[:, None, :] - cand).norm(dim=-1)
        else:
            exact = 1.0 - (block[:, None, :] * cand).sum(-1)
        if exclude is not None:
            exact = exact.masked_fill(i == exclude[start:start + step, None], float("inf"))
        d, j = torch.topk(exact, k, dim=1, largest=False)  # [b, k]
        dists.append(d)
        idxs.append(i.gather(1, j))
    return torch.cat(dists), torch.cat(idxs)


def hdr_threshold(d: int, level: float = 0.95) -> float:
    """Mahalanobis radius of the Gaussian's highest-density region: ``sqrt(chi2_d^{-1}(level))``.

    For ``x ~ N(mu, Sigma)`` in ``d`` dims, ``m(x)^2 ~ chi2_d``, and the region of highest density
    holding mass ``level`` is the ellipsoid ``{m(x)^2 <= chi2_d quantile(level)}``.
    """
    from scipy.stats import chi2

    return float(chi2.ppf(level, d)) ** 0.5


def _median(x: Tensor) -> float:
    return float(x.double().median()) if x.numel() else float("nan")


def placement_metrics(prompts: Tensor, reference: "Reference", decode: Callable[[int], str] | None = None,
                      k: int = 1, baseline_size: int = 1024, hdr_level: float = 0.95,
                      seed: int = 0) -> dict:
    """Per-prompt placement arrays, their medians, and the reference's own baseline.

    For prompts ``p_i: [n, d]`` and reference rows ``r_j: [N, d]`` with Gaussian fit ``N(mu, Sigma)``:

    - ``nn_l2[i] = min_j |p_i - r_j|``; ``nn_cos[i] = min_j 1 - cos(p_i, r_j)``
    - ``nn_ids[i]``: token ids of the ``k`` L2-nearest rows (``nn_tokens`` via ``decode(id)`` if given)
    - ``mahalanobis[i] = sqrt((p_i - mu)^T Sigma^{-1} (p_i - mu))``
    - ``logdensity_percentile[i] = #{j : log N(r_j) < log N(p_i)} / N`` (all rows)
    - ``in_hdr[i] = mahalanobis[i]^2 <= chi2_d quantile(hdr_level)`` (``share_in_hdr`` = mean)

    ``baseline`` holds the same medians for ``baseline_size`` reference rows (a seeded subsample),
    each measured against all *other* rows (its own row excluded), so real embedding clouds, which
    are far from Gaussian, have a yardstick: e.g. their own ``share_in_hdr`` is rarely 0.95.
    """
    prompts = prompts.detach().float().reshape(-1, reference.dim)  # [n, d]
    rows = reference.vectors  # [N, d]
    gauss = reference.fit()
    radius = hdr_threshold(reference.dim, hdr_level)
    sorted_m, baseline = _reference_side(reference, baseline_size, hdr_level, seed)

    l2, idx = nearest_neighbours(prompts, rows, k=k)  # [n, k]
    cos, _ = nearest_neighbours(prompts, rows, k=1, metric="cos")  # [n, 1]
    maha = gauss.mahalanobis(prompts)  # [n]
    # log-density is monotone decreasing in m: share of rows with lower density = share with larger m
    pct = 1.0 - torch.searchsorted(sorted_m, maha, right=True).double() / len(sorted_m)
    nn_ids = reference.ids()[idx]  # [n, k]

    out = {
        "nn_l2": l2[:, 0], "knn_l2": l2, "nn_cos": cos[:, 0], "nn_ids": nn_ids,
        "mahalanobis": maha, "logdensity_percentile": pct, "in_hdr": maha <= radius,
        "median_nn_l2": _median(l2[:, 0]), "median_nn_cos": _median(cos[:, 0]),
        "median_mahalanobis": _median(maha), "median_logdensity_percentile": _median(pct),
        "share_in_hdr": float((maha <= radius).double().mean()), "hdr_radius": radius, "hdr_level": hdr_level,
        "baseline": dict(baseline),
    }
    if decode is not None:
        out["nn_tokens"] = [[decode(int(t)) for t in row] for row in nn_ids]
    return out


def _reference_side(reference: "Reference", baseline_size: int, hdr_level: float, seed: int
                    ) -> tuple[Tensor, dict]:
    """Sorted Mahalanobis distances of all rows ``[N]`` and the baseline dict, memoised on the reference."""
    key = ("placement", baseline_size, hdr_level, seed)
    if key in reference.memo:
        return reference.memo[key]
    rows, gauss = reference.vectors, reference.fit()
    radius = hdr_threshold(reference.dim, hdr_level)
    ref_m = torch.cat([gauss.mahalanobis(c) for c in rows.split(8192)])  # [N]
    sub = torch.randperm(len(reference), generator=torch.Generator().manual_seed(seed))[:baseline_size]
    if len(reference) > 1:
        b_l2, _ = nearest_neighbours(rows[sub], rows, k=1, exclude=sub)  # [s, 1]
        b_cos, _ = nearest_neighbours(rows[sub], rows, k=1, metric="cos", exclude=sub)
    else:
        b_l2 = b_cos = torch.full((1, 1), float("nan"))
    baseline = {
        "n": int(sub.numel()), "median_nn_l2": _median(b_l2[:, 0]), "median_nn_cos": _median(b_cos[:, 0]),
        "median_mahalanobis": _median(ref_m[sub]), "share_in_hdr": float((ref_m <= radius).double().mean()),
    }
    reference.memo[key] = (torch.sort(ref_m).values, baseline)
    return reference.memo[key]


# ---------------------------------------------------------------------------------------------
# trajectories vs random walks
# ---------------------------------------------------------------------------------------------

def trajectory_step_lengths(seq: Tensor) -> Tensor:
    """``s_t = |x_{t+1} - x_t|_2`` for a trajectory ``seq: [T, d]`` -> ``[T - 1]``."""
    seq = seq.double()
    return (seq[1:] - seq[:-1]).norm(dim=1)


def random_walk_step_lengths(reference_rows: Tensor, lengths: Sequence[int] | int,
                             generator: torch.Generator) -> Tensor:
    """Step lengths of random walks over the rows, one walk per entry of ``lengths`` (points per walk).

    Each walk visits ``T`` rows drawn uniformly (with replacement) from ``reference_rows: [N, d]``,
    i.e. a walk over the same vocabulary that ignores the geometry; returns all
    ``sum_w (T_w - 1)`` step lengths concatenated, to compare with real trajectories of equal lengths.
    """
    lengths = [lengths] if isinstance(lengths, int) else list(lengths)
    steps = []
    for t in lengths:
        if t < 2:
            continue
        walk = reference_rows[torch.randint(reference_rows.shape[0], (int(t),), generator=generator)]  # [T, d]
        steps.append(trajectory_step_lengths(walk))
    return torch.cat(steps) if steps else torch.zeros(0, dtype=torch.float64)


def compare_steps(real: Tensor, random: Tensor) -> dict:
    """Two-sided Mann-Whitney U test of real vs random step lengths, with effect sizes.

    ``cliffs_delta = P(real > random) - P(real < random) = 2 U / (n_real n_random) - 1`` (equal to
    the rank-biserial correlation); ``median_ratio = median(real) / median(random)``.
    """
    from scipy.stats import mannwhitneyu

    a = torch.as_tensor(real).double().reshape(-1).numpy()
    b = torch.as_tensor(random).double().reshape(-1).numpy()
    if len(a) == 0 or len(b) == 0:
        raise ValueError("compare_steps needs at least one real and one random step")
    res = mannwhitneyu(a, b, alternative="two-sided")
    med_a, med_b = float(torch.tensor(a).median()), float(torch.tensor(b).median())
    return {
        "n_real": len(a), "n_random": len(b), "u": float(res.statistic), "p_value": float(res.pvalue),
        "median_real": med_a, "median_random": med_b,
        "median_ratio": med_a / med_b if med_b else float("inf"),
        "cliffs_delta": 2.0 * float(res.statistic) / (len(a) * len(b)) - 1.0,
    }
