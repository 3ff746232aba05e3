"""Cost volume, disparity read-outs and losses."""

from __future__ import annotations

import torch

from evstereo.models.cost_volume import concat_cost_volume
from evstereo.models.heads import local_softmax, soft_argmin
from evstereo.models.losses import smooth_l1, subpixel_cross_entropy, subpixel_target


def test_cost_volume_pairs_shifted_pixels():
    left = torch.randn(2, 3, 4, 5, 12)  # [B, T, C, H, W]
    right = torch.randn(2, 3, 4, 5, 12)
    vol = concat_cost_volume(left, right, 6)
    assert vol.shape == (2, 3, 8, 6, 5, 12)
    d, x = 4, 9
    torch.testing.assert_close(vol[..., :4, d, :, x], left[..., x])
    torch.testing.assert_close(vol[..., 4:, d, :, x], right[..., x - d])
    assert (vol[..., d, :, :d] == 0).all()


def test_readouts():
    cost = torch.full((1, 10, 1, 1), -50.0)
    cost[0, 3] = 5.0
    cost[0, 4] = 5.0
    assert torch.allclose(soft_argmin(cost), torch.tensor([[[3.5]]]), atol=1e-4)
    cost[0, 9] = 4.9  # a far second mode pulls soft-argmin but not the local read-out
    assert soft_argmin(cost).item() > 4.5
    assert abs(local_softmax(cost, radius=2).item() - 3.5) < 1e-3


def test_losses_are_masked_and_have_the_right_optimum():
    target = torch.tensor([[[2.3, 7.0]]])
    valid = torch.tensor([[[True, False]]])
    pred = torch.tensor([[[2.3, 0.0]]], requires_grad=True)
    assert smooth_l1(pred, target, valid).item() == 0.0
    q = subpixel_target(target, 10)
    assert torch.allclose(q.sum(1), torch.ones(1, 1, 2))
    # the target's own log-probabilities minimise the CE, and the read-out returns ~2.3
    best = subpixel_cross_entropy(q.log(), target, valid)
    worse = subpixel_cross_entropy(torch.roll(q.log(), 1, dims=1), target, valid)
    assert best < worse
    assert abs(local_softmax(q.log(), radius=3)[0, 0, 0].item() - 2.3) < 0.05
    none = torch.zeros_like(valid)
    assert smooth_l1(pred, target, none).item() == 0.0
