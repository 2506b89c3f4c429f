"""Prompt penalties: their values on known inputs, and their effect on training."""
import pytest
import torch

from priorlib.checkpoint import list_checkpoints, load_checkpoint
from priorlib.priors import Reference
from priorlib.regularisers import Penalty, RegulariserWeights


def _ref(d=8, n=4000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Reference.from_activations(torch.randn(n, d, generator=g) * 2.0 + 1.0, "toy")


def test_penalty_values():
    ref = _ref()
    start = torch.zeros(3, 8)
    reg = Penalty(RegulariserWeights(1, 1, 1, 1), start, ref)
    p = torch.ones(3, 8)  # exactly the reference mean (up to sampling), deep inside the HDR
    t = reg.terms(p)
    assert t["prior_l2"] == pytest.approx(8.0)
    assert t["mahalanobis"] == pytest.approx(0.0, abs=0.01)
    m = reg._maha(p)
    assert float(m.max()) < 0.2  # the sample mean is within 0.2 sd of the true mean (n = 4000)
    assert t["mahalanobis_hinge"] == pytest.approx(float(((reg.radius - m) ** 2).mean() / 8), rel=1e-5)
    assert t["mahalanobis_hinge"] > 0.9 * reg.radius ** 2 / 8  # nearly the full hinge
    far = torch.full((3, 8), 1.0 + 2.0 * 20)  # 20 sd out in every dim: m ~ 20 sqrt(8) > radius
    assert reg.terms(far)["mahalanobis_hinge"] == 0.0
    row = ref.vectors[:3].clone()
    # cdist takes the matmul route for many rows: ~1e-4 round-off against typical neighbour distances of ~2
    assert reg.terms(row)["nearest_token"] == pytest.approx(0.0, abs=2e-3)
    assert reg.terms(row + 0.5)["nearest_token"] > 0.5


def test_negative_weight_rejected():
    with pytest.raises(ValueError, match="must be >= 0"):
        RegulariserWeights(prior_l2=-1)


def test_prior_l2_keeps_trained_prompt_near_its_sample(tmp_path, tiny):
    import sys, os
    sys.path.insert(0, os.path.dirname(__file__))
    from test_trainer import make_trainer

    def moved(out, **over):
        make_trainer(out, tiny, steps=10, checkpoint_every=10, **over).fit()
        ck = list_checkpoints(out)
        a, b = load_checkpoint(ck[0][1])["prompts"]["soft"], load_checkpoint(ck[-1][1])["prompts"]["soft"]
        return float((b - a).norm(dim=-1).mean())

    free = moved(tmp_path / "free")
    tied = moved(tmp_path / "tied", reg_prior_l2=100.0)
    assert tied < 0.5 * free
    hist = (tmp_path / "tied" / "history.jsonl").read_text()
    assert "reg_prior_l2" in hist


def test_one_list_of_regularisers_matches_the_config():
    from priorlib import TrainConfig
    from priorlib.regularisers import PENALTIES, REGULARISERS
    fields = set(TrainConfig.__dataclass_fields__)
    assert all(r.field in fields for r in REGULARISERS.values())
    assert set(PENALTIES) == set(RegulariserWeights.__dataclass_fields__)
    cfg = TrainConfig(model="tiny-random-llama", reg_mahalanobis=2.5, reg_nearest_token=0.5)
    assert cfg.regularisers() == RegulariserWeights(mahalanobis=2.5, nearest_token=0.5)
