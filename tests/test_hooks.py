"""priorlib.hooks: the hook-point listing and depths, and batching of the forward pass."""
import pytest
import torch

from priorlib.hooks import depth_labels, depth_of, hook_points, iter_activations


def test_hook_points_of_the_tiny_model(tiny):
    model, _ = tiny
    assert hook_points(model) == ["embed"] + [f"layers.{i}.resid_post" for i in range(4)]
    assert hook_points(model, [-1, 1]) == ["embed", "layers.1.resid_post", "layers.3.resid_post"]  # in depth order
    assert hook_points(model, site="resid_pre", embed=False) == [f"layers.{i}.resid_pre" for i in range(4)]
    with pytest.raises(ValueError, match="site"):
        hook_points(model, site="mlp_out")


def test_depth_of_counts_blocks_passed():
    assert depth_labels(["embed", "layers.0.resid_pre", "layers.0.resid_post", "layers.3.resid_post"]) == [0, 0, 1, 4]
    for bad in ("final_norm", "layers.-1.resid_post", "mlp"):
        with pytest.raises(ValueError):
            depth_of(bad)


def test_bucketed_batches_give_the_same_activations(tiny):
    model, tok = tiny
    texts = ["The cat sat on the mat.", "Two plus two is four, said the teacher.", "Hi.", "A longer text here, surely."]
    point = ["layers.2.resid_post"]
    plain = {i: (a[point[0]][r], m[r]) for a, m, _, idx in iter_activations(model, tok, texts, point, batch_size=3,
                                                                            dtype=None, progress=False)
             for r, i in enumerate(idx)}
    for acts, mask, ids, idx in iter_activations(model, tok, texts, point, batch_size=3, dtype=None, bucket=8,
                                                 progress=False):
        assert mask.shape[1] % 8 == 0 and len(idx) == acts[point[0]].shape[0] == ids.shape[0]
        for r, i in enumerate(idx):
            L = int(mask[r].sum())
            assert L == int(plain[i][1].sum())
            assert torch.allclose(acts[point[0]][r, :L], plain[i][0][:L], atol=1e-5)
