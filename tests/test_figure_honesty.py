"""The figures that show where prompts are: the distance panels beside each map, the joint map, the
activation map, and show()'s caption/alt keywords."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from priorlib.compendium.plots import domains, posterior as pp  # noqa: E402
from priorlib.priors import Reference  # noqa: E402


def _reference_and_far(d: int = 24):
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(1500, d, generator=g) * torch.cat([torch.full((2,), 8.0), torch.ones(d - 2)])
    far = torch.zeros(6, d)
    far[:, 7] = 40.0  # 40 sd along a thin axis
    return Reference(rows, "synthetic"), far


def test_distance_panels_put_far_prompts_beyond_every_token_row():
    ref, far = _reference_and_far()
    near = ref.vectors[:6] + 0.01
    tokens = pp.token_distances(ref, n=300)
    prompts = pp.prompt_distances(ref, {"far": far, "near": near})
    share = pp.beyond_tokens(tokens, prompts)
    assert share["far"] == 1.0 and share["near"] == 0.0
    fig = pp.distance_panels(tokens, prompts)
    xl = [ax.get_xlabel() for ax in fig.axes]
    assert any("Mahalanobis" in x for x in xl) and any("nearest" in x and "units" in x for x in xl)


def test_joint_projection_draws_the_far_prompts_outside_the_cloud():
    from scipy.spatial import Delaunay
    ref, far = _reference_and_far()
    old, new = pp.Projection(ref.vectors), pp.Projection(ref.vectors, points=far)
    assert Delaunay(old.cloud).find_simplex(old(far)).min() >= 0  # token-only PCA: inside
    assert (Delaunay(new.cloud).find_simplex(new(far)) < 0).all()
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    new.axes_labels(ax)
    assert "% of variance" in ax.get_xlabel() and "% of variance" in ax.get_ylabel()
    plt.close(fig)


def test_two_clouds_uses_the_activation_projection():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g)
    x[0, 2] = 5000.0
    cl = domains.TwoClouds({"math": Reference(x, "acts")})
    assert cl.explained[0] < 0.5 and "standardised" in cl.description
