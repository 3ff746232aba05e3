"""The inference fast paths give the network's own numbers: volume-free first matching layer,
fused upsampling + read-out kernel, and the wrapper the live engine uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evstereo.inference.readout import FusedReadoutNet, upsample_soft_argmin
from evstereo.models import build_stereo_net
from evstereo.models.heads import soft_argmin
from evstereo.snn import EnergyMeter

SMALL = {"genotype": "reference", "feature_filters": 2, "matching_filters": 2, "max_disparity": 24}


def _events(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < 0.1).float()


@pytest.mark.parametrize("shape,size,crop", [((1, 12, 88, 116), (36, 264, 348), (260, 346)),
                                              ((2, 5, 7, 9), (15, 21, 27), (21, 27)),
                                              ((1, 3, 4, 4), (9, 12, 12), (10, 7))])
def test_fused_readout_equals_trilinear_upsampling_then_soft_argmin(shape, size, crop):
    coarse = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))) * 3
    full = F.interpolate(coarse[:, None], size=size, mode="trilinear", align_corners=False)[:, 0]
    raw = soft_argmin(full[..., : crop[0], : crop[1]])
    cap = float(raw.median())  # a clamp that bites on half the pixels
    ref = raw.clamp(0, cap).numpy()
    ours = upsample_soft_argmin(coarse.numpy(), size, crop, cap)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)
    assert (ours == np.float32(cap)).mean() > 0.3


def test_fused_readout_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[B, L, H, W\]"):
        upsample_soft_argmin(np.zeros((3, 4, 5), np.float32), (9, 12, 15), (12, 15), 9)
    with pytest.raises(ValueError, match="crop"):
        upsample_soft_argmin(np.zeros((1, 3, 4, 5), np.float32), (9, 12, 15), (13, 15), 9)


@pytest.mark.parametrize("head", ["soft_argmin", "local_softmax"])
def test_inference_wrapper_and_volume_free_matching_give_the_networks_disparity(head):
    torch.manual_seed(0)
    net = build_stereo_net({**SMALL, "head": head, "time_steps": 2, "in_channels": 3}).eval()
    left, right = _events(2, 2, 3, 37, 50), _events(2, 2, 3, 37, 50, seed=1)
    with torch.no_grad():
        plain = net(left, right)
        fused = FusedReadoutNet(net)(left, right)
        coarse, _ = net.coarse_cost(left, right)
        # a forward hook on the first matching conv makes the network build the cost volume
        calls = []
        hook = net.matching_net.stem0.synapse[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
        direct, _ = net.coarse_cost(left, right)
        hook.remove()
    assert len(calls) == 1 and calls[0][2] == 8  # [B*T, 2C, levels, H/3, W/3]
    assert fused.shape == plain.shape == (2, 37, 50)
    torch.testing.assert_close(fused, plain, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(coarse, direct, atol=1e-4, rtol=1e-4)
    assert FusedReadoutNet(net).max_disparity == net.max_disparity  # attributes pass through


def test_energy_meter_still_sees_the_first_matching_layer():
    """With hooks on the convolutions the matching net builds the volume, so SOPs are counted."""
    torch.manual_seed(0)
    net = build_stereo_net(SMALL).eval()
    report = EnergyMeter(net).measure(_events(1, 1, 5, 36, 48), _events(1, 1, 5, 36, 48, seed=2))
    stem = [r for r in report["layers"] if r["name"] == "matching_net.stem0.synapse.0"]
    assert len(stem) == 1 and stem[0]["calls"] == 1 and stem[0]["kind"] == "spiking"
