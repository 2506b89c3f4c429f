"""The figures that show where prompts are: the distance panels beside each map, the joint map, the
activation map, and show()'s caption/alt keywords."""
from __future__ import annotations

import logging

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


def test_mahalanobis_strips_show_the_gap_the_projection_hides():
    """Exclusion-like prompts (far by Mahalanobis distance, near the centre of any 2-D projection) sit
    beyond the 95% radius on the strips, and at their exact distance on the radial map, with the token
    rows drawn first and visible."""
    import matplotlib.pyplot as plt
    from priorlib.metrics.placement import hdr_threshold
    ref, _ = _reference_and_far()
    g = ref.fit()
    gen = torch.Generator().manual_seed(1)
    L = g.cholesky.float()
    wide = lambda n, c: (torch.randn(n, ref.dim, generator=gen) * c ** 0.5) @ L.T + g.mean.float()  # noqa: E731
    draws = {"vocabulary": g.mahalanobis(ref.vectors).numpy(), "fitted-gaussian": g.mahalanobis(wide(500, 1.0)).numpy(),
             "exclusion": g.mahalanobis(wide(500, 5.0)).numpy()}
    panels = [("exclusion lr=0.05 seed=0", wide(6, 5.0), wide(6, 6.0)),
              ("fitted-gaussian lr=0.05 seed=0", wide(6, 1.0), wide(6, 1.0))]
    proj = pp.Projection(ref.vectors, points=torch.cat([torch.cat([s, t]) for _, s, t in panels]))
    radius = hdr_threshold(ref.dim)
    fig, caption = pp.mahalanobis_strips(ref, panels, draws=draws, radius=radius, proj=proj)
    strips, radial = fig.axes[:2]
    labels = [t.get_text() for t in strips.get_yticklabels()][::-1]  # top to bottom
    assert labels == ["token embeddings (all 1,500)", "fitted-gaussian prior draws (n=500)",
                      "exclusion prior draws (n=500)", "exclusion lr=0.05 seed=0, sampled",
                      "exclusion lr=0.05 seed=0, trained", "fitted-gaussian lr=0.05 seed=0, sampled",
                      "fitted-gaussian lr=0.05 seed=0, trained"]
    med = {lab: float(np.median(np.asarray(c.get_offsets())[:, 0])) for lab, c in zip(labels, strips.collections)}
    assert med["exclusion prior draws (n=500)"] > 1.8 * radius > 1.8 * med["fitted-gaussian prior draws (n=500)"]
    assert med["exclusion lr=0.05 seed=0, sampled"] > radius
    assert [round(x, 6) for x in strips.lines[-1].get_xdata()] == [round(radius, 6)] * 2  # the 95% radius
    # radial map: the token rows first (under everything), visible, each point at its exact distance
    tok = radial.collections[0]
    assert tok.get_zorder() < min(c.get_zorder() for c in radial.collections[1:])
    assert tok.get_alpha() >= 0.3 and tok.get_sizes()[0] >= 3 and len(tok.get_offsets()) == 1500
    r_tok = np.hypot(*np.asarray(tok.get_offsets()).T)
    assert np.allclose(np.sort(r_tok), np.sort(draws["vocabulary"]), rtol=1e-4)
    exc_sampled = np.hypot(*np.asarray(radial.collections[1].get_offsets()).T)
    assert np.allclose(exc_sampled, g.mahalanobis(panels[0][1]).numpy(), rtol=1e-4)
    assert f"r = {radius:.1f}" in caption and f"exclusion prior draws {np.median(draws['exclusion']):.1f}" in caption
    plt.close(fig)
    fig, caption = pp.mahalanobis_strips(ref, panels)  # no draws, no map: one panel, the radius computed
    assert len(fig.axes) == 1 and "Right:" not in caption and f"r = {radius:.1f}" in caption
    plt.close(fig)
    # two panels whose titles differ only inside parentheses keep apart in the caption (06's two VAE arms)
    vae = [("VAE (β = 1, no penalty)", wide(6, 1.0), wide(6, 2.0)), ("VAE (β = 1, penalty 10)", wide(6, 1.0), wide(6, 3.0))]
    _, caption = pp.mahalanobis_strips(ref, vae)
    names = [part.rsplit(" ", 1)[0] for part in caption.split("Medians: ")[1].rstrip(".").split("; ")]
    assert names == ["token embeddings", "VAE (β = 1, no penalty), sampled", "VAE (β = 1, no penalty), trained",
                     "VAE (β = 1, penalty 10), sampled", "VAE (β = 1, penalty 10), trained"]
    plt.close("all")


def test_the_scrubber_draws_far_prompts_outside_the_token_region(caplog):
    """The scrubber's map (:class:`RadialMap` around the joint projection): an exclusion-like prompt, far
    by Mahalanobis distance, is drawn beyond the 95% circle and beyond almost every token row, at exactly
    its distance; a prompt drawn from the fit stays inside (whatever a linear map makes of them: with few
    prompts in many dimensions it can fold the far ones into the cloud's middle)."""
    import matplotlib.pyplot as plt
    from types import SimpleNamespace as NS
    import pandas as pd
    from priorlib.compendium import runs as sec
    from priorlib.metrics.placement import hdr_threshold
    ref, _ = _reference_and_far()
    g = ref.fit()
    gen = torch.Generator().manual_seed(2)
    L = g.cholesky.float()
    wide = lambda n, c: (torch.randn(n, ref.dim, generator=gen) * c ** 0.5) @ L.T + g.mean.float()  # noqa: E731
    far, near = wide(20, 5.0), wide(20, 1.0)
    proj = sec.joint_projection(ref, [("exclusion", far, far), ("fitted-gaussian", near, near)])
    rm = pp.RadialMap(proj, g)
    r = hdr_threshold(ref.dim)
    assert rm.radius == r and np.allclose(np.hypot(*rm(far).T), g.mahalanobis(far).numpy(), rtol=1e-5)
    tok_r = np.hypot(*rm.cloud_points().T)
    assert np.median(np.hypot(*rm(far).T)) > max(r, np.quantile(tok_r, 0.99))
    assert np.median(np.hypot(*rm(near).T)) < r
    # the scrubber uses it: the frame's last scatter (the prompts at this step) sits at the exact distances
    run = NS(config=NS(), checkpoints=lambda: [(0, {"soft": far}), (5, {"soft": far * 1.01})],
             history=lambda: pd.DataFrame({"step": [1, 5], "loss": [2.0, 1.5]}))
    captured = {}
    import priorlib.compendium.widgets as w
    orig = w.checkpoint_scrubber
    w.checkpoint_scrubber = lambda frames, labels: captured.update(frames=frames, labels=labels) or "widget"
    try:
        with caplog.at_level(logging.WARNING, logger="matplotlib"):
            assert sec.scrubber(run, proj, reference_name="tokens", title="t") == "widget"
            for f in captured["frames"]:
                f.canvas.draw()
    finally:
        w.checkpoint_scrubber = orig
    # matplotlib's "Ignoring fixed x limits to fulfill fixed data aspect" (a log line) ended up in the book
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("matplotlib")]
    a = captured["frames"][1].axes[0]
    # one scale in every frame (the radial map keeps equal aspect) and the limits it was given
    assert a.get_aspect() == 1.0 and captured["frames"][0].axes[0].get_xlim() == a.get_xlim()
    pts = np.asarray(a.collections[-1].get_offsets())
    assert np.allclose(np.hypot(*pts.T), g.mahalanobis(far * 1.01).numpy(), rtol=1e-4)
    assert captured["labels"] == ["step 0", "step 5"] and "Mahalanobis distance" in a.get_xlabel()
    plt.close("all")
