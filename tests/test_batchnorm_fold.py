"""Inference copies with BatchNorm folded into the convolutions (evstereo.snn.layers.folded_for_inference)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from evstereo.models import load_checkpoint, shipped_checkpoint
from evstereo.snn import EnergyMeter
from evstereo.snn.layers import folded_for_inference


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _events(seed: int, h: int = 64, w: int = 80) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    active = (torch.rand(1, 1, 5, h, w, generator=g) < 0.1).float()
    return active * (torch.randint(0, 2, (1, 1, 5, h, w), generator=g) * 2 - 1)


def test_the_shipped_network_folded_gives_the_same_disparity_and_energy():
    net = load_checkpoint(shipped_checkpoint()).eval()
    n_bn = _batchnorms(net)
    folded = folded_for_inference(net)
    assert n_bn > 10 and _batchnorms(folded) == 0
    assert _batchnorms(net) == n_bn  # the original keeps its layers (it may go on training)
    left, right = _events(0), _events(1)
    with torch.no_grad():
        a, b = net(left, right), folded(left, right)
    assert torch.allclose(a, b, atol=1e-3), (a - b).abs().max()
    ea, eb = EnergyMeter(net).measure(left, right), EnergyMeter(folded).measure(left, right)
    assert abs(ea["energy_mj"] - eb["energy_mj"]) <= 1e-6 * ea["energy_mj"]


def test_folding_uses_the_running_statistics_and_affine_parameters():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1, bias=True), nn.BatchNorm3d(4), nn.ReLU())
    bn = block[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.2, 3)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    block.eval()
    x = torch.randn(2, 3, 5, 6, 7)
    folded = folded_for_inference(block)
    assert [type(m) for m in folded] == [nn.Conv3d, nn.ReLU]
    assert torch.allclose(block(x), folded(x), atol=1e-5)
    assert block.training is False and _batchnorms(block) == 1


def test_the_streaming_engine_runs_a_folded_copy_and_keeps_the_callers_network(random_recording):
    from evstereo.inference import EngineConfig, StreamingEngine
    from evstereo.recordings import open_recording

    net = load_checkpoint(shipped_checkpoint())
    n_bn = _batchnorms(net)
    with open_recording(random_recording) as rec:
        engine = StreamingEngine(rec, net, EngineConfig(max_speed=True, max_frames=1, scale=1.0))
        assert _batchnorms(engine.model) == 0
        frames = list(engine.frames())
    assert _batchnorms(net) == n_bn
    assert len(frames) == 1 and np.isfinite(frames[0].disparity).any()
