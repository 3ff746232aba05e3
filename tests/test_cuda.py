"""The CUDA path: one search step and one training step on the GPU (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from conftest import ROOT
from evstereo.models import build_search_net, build_stereo_net
from evstereo.models.losses import smooth_l1
from evstereo.search.energy_cost import budget_penalty

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")]


def _batch(device, h=96, w=144):
    g = torch.Generator().manual_seed(0)
    x = ((torch.rand(2, 1, 5, h, w, generator=g) < 0.1).float()).to(device)
    return x, x.roll(-4, dims=-1), torch.full((2, h, w), 4.0, device=device)


def test_training_step_on_cuda():
    net = build_stereo_net(ROOT / "configs" / "model" / "fast.yaml").cuda()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    left, right, gt = _batch("cuda")
    loss = smooth_l1(net(left, right), gt, gt > 0)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and next(net.parameters()).is_cuda


def test_search_step_on_cuda():
    sup = build_search_net({"max_disparity": 36, "feature_filters": 2, "matching_filters": 2,
                            "feature_layers": 2, "matching_layers": 3}).cuda()
    opt_a = torch.optim.Adam(sup.arch_parameters(), 1e-3)
    opt_w = torch.optim.SGD(sup.weight_parameters(), 0.01)
    left, right, gt = _batch("cuda", 48, 72)
    with sup.energy_probe(left, right) as reading:
        task = smooth_l1(sup(left, right), gt, gt > 0)
    (task + budget_penalty(reading.energy_mj(), 1e-3) + budget_penalty(reading.dense_gmacs(), 1e-3, "hinge")).backward()
    opt_a.step()
    opt_w.step()
    assert sup.arch_parameters()[0].grad is not None
