"""Cost volume, disparity read-outs and losses."""

from __future__ import annotations

import torch

import pytest
import torch.nn.functional as F

from evstereo.models.cost_volume import concat_cost_volume, concat_volume_conv3d
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


@pytest.mark.parametrize("n,c,h,w,levels,k", [(2, 4, 7, 20, 6, 3), (1, 3, 5, 4, 8, 3), (1, 2, 6, 30, 5, 5),
                                               (1, 3, 6, 9, 4, 1), (1, 3, 4, 12, 12, 3)])
def test_volume_free_first_matching_conv_equals_conv_of_the_volume(n, c, h, w, levels, k):
    """Narrow images, more levels than columns, 1x1x1 and 5x5x5 kernels: values and gradients."""
    torch.manual_seed(levels + w)
    left, right = torch.randn(n, c, h, w, requires_grad=True), torch.randn(n, c, h, w, requires_grad=True)
    weight = torch.randn(5, 2 * c, k, k, k, requires_grad=True)
    bias = torch.randn(5, requires_grad=True)
    ref = F.conv3d(concat_cost_volume(left, right, levels), weight, bias, padding=k // 2)
    ours = concat_volume_conv3d(left, right, levels, weight, bias)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
    g = torch.randn_like(ref)
    grads_ref = torch.autograd.grad(ref, (left, right, weight, bias), g)
    grads = torch.autograd.grad(ours, (left, right, weight, bias), g)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)
    with pytest.raises(ValueError, match="odd k"):
        concat_volume_conv3d(left, right, levels, torch.randn(5, 2 * c, 2, 2, 2))


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
