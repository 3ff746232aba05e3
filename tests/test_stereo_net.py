"""The stereo network: build from config, any input size, search supernet, decoding (the cost
constraint: tests/test_energy_budget.py)."""

from __future__ import annotations

import torch
import pytest

from conftest import ROOT
from evstereo.errors import InputError
from evstereo.models import build_search_net, build_stereo_net, load_checkpoint, save_checkpoint
from evstereo.search.genotypes import REFERENCE, Genotype

SMALL = {"feature_filters": 2, "matching_filters": 2, "max_disparity": 24}


def _events(*shape, rate=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(*shape, generator=g) < rate).float()
    return x * torch.sign(torch.rand(*shape, generator=g) - 0.3)


def test_reference_network_on_a_full_mvsec_frame():
    net = build_stereo_net(ROOT / "configs" / "model" / "reference.yaml").eval()
    assert net.genotype == REFERENCE and net.max_disparity == 63
    assert net.time_steps == 1 and net.in_channels == 5
    assert net.input_spec.as_dict() == {"representation": "sbt", "bins": 5, "time_steps": 1, "window_us": 50_000}
    with torch.no_grad():
        d = net(_events(1, 1, 5, 260, 346), _events(1, 1, 5, 260, 346, seed=1))
    assert d.shape == (1, 260, 346) and d.dtype == torch.float32
    assert d.min() >= 0 and d.max() <= 63


@pytest.mark.parametrize("h,w", [(37, 50), (48, 72)])
def test_any_input_size_and_gradients(h, w):
    net = build_stereo_net({"genotype": "reference", **SMALL, "time_steps": 2, "in_channels": 3})
    left = _events(2, 2, 3, h, w).requires_grad_(True)
    d = net(left, _events(2, 2, 3, h, w, seed=3))
    assert d.shape == (2, h, w) and d.min() >= 0 and d.max() <= 24
    d.mean().backward()
    assert net.time_constants.w["feature"].grad is not None
    assert all(p.grad is not None for p in net.matching_net.readout.parameters())


def test_supernet_forward_backward_decodes_to_a_working_network():
    sup = build_search_net({**SMALL, "feature_layers": 2, "matching_layers": 3})
    left, right = _events(1, 1, 5, 48, 72), _events(1, 1, 5, 48, 72, seed=2)
    d = sup(left, right)
    assert d.shape == (1, 48, 72)
    d.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sup.arch_parameters())
    arch = {id(p) for p in sup.arch_parameters()}
    assert len(sup.weight_parameters()) + len(arch) == len(list(sup.parameters()))
    g = sup.genotype()
    assert isinstance(g, Genotype) and g.feature_path[-1] == 0 and len(g.matching_path) == 3
    derived = build_stereo_net({"genotype": g.to_data(), **SMALL})
    out = derived(left, right)
    assert out.shape == (1, 48, 72) and 0 <= out.min() and out.max() <= 24


def test_supernet_and_derived_network_share_their_construction():
    """Same config, time constants, neurons and stems: only the cells differ."""
    from evstereo.models.search_net import SearchStereoNet
    from evstereo.models.stereo_net import StereoBase, StereoNet

    sup = build_search_net({**SMALL, "feature_layers": 2, "matching_layers": 3})
    net = build_stereo_net({"genotype": "reference", **SMALL})
    assert isinstance(sup, SearchStereoNet) and isinstance(net, StereoNet)
    assert isinstance(sup, StereoBase) and isinstance(net, StereoBase) and not isinstance(sup, StereoNet)

    def stems(model):
        return {k: v.shape for k, v in model.state_dict().items() if ".stem" in k or k.startswith("time_constants")}

    assert stems(sup) == stems(net) and stems(net)
    assert sup.input_spec == net.input_spec and sup.config == net.config


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    net = build_stereo_net({"genotype": "reference", **SMALL}).eval()
    path = tmp_path / "net.pt"
    save_checkpoint(net, path)
    back = load_checkpoint(path)
    x, y = _events(1, 1, 5, 30, 40), _events(1, 1, 5, 30, 40, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(back(x, y), net(x, y))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt.*cannot be read"):
        load_checkpoint(bad)
    with pytest.raises(InputError, match="missing.pt.*does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="unknown model option.*filterz"):
        build_stereo_net({"filterz": 3})


@pytest.mark.parametrize("time_steps, windows", [(1, 1), (5, 1), (1, 3)])
def test_time_constants_get_a_gradient_only_over_several_time_steps(time_steps, windows):
    """The audit's finding, kept as a measurement: with T = 1 and the membrane at 0 at the start
    of every window the decay never enters the dynamics (a zero gradient); with the SBT window
    split into 5 steps (bins 5 = 5 steps x 1 channel), or with one step per window but the
    membranes carried over 3 context windows (stateful), every neuron type's decay gets one."""
    import yaml

    from conftest import ROOT
    from evstereo.models import build_stereo_net

    cfg = yaml.safe_load((ROOT / "configs" / "model" / "tiny.yaml").read_text())
    cfg.update(in_channels=5 // time_steps, time_steps=time_steps, stateful=windows > 1, context_windows=windows)
    torch.manual_seed(0)
    net = build_stereo_net(cfg).train()
    assert net.input_spec.bins == 5 and net.time_steps == time_steps
    steps = time_steps * windows
    left = (torch.rand(2, steps, 5 // time_steps, 48, 72) < 0.2).float()
    right = torch.roll(left, shifts=-4, dims=-1)
    net(left, right).mean().backward()
    grads = {name: p.grad for name, p in net.time_constants.named_parameters()}
    assert grads, "the network has learnable time constants"
    magnitude = {name: 0.0 if g is None else float(g.abs().sum()) for name, g in grads.items()}
    if steps == 1:
        assert all(m == 0.0 for m in magnitude.values()), magnitude
    else:
        assert all(m > 0.0 for m in magnitude.values()), magnitude
    # and a few optimiser steps move them (or, for T = 1, leave them exactly where they were)
    from evstereo.snn import learned_time_constants

    before = learned_time_constants(net)
    opt = torch.optim.Adam(net.time_constants.parameters(), lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        net(left, right).mean().backward()
        opt.step()
    moved = {k: abs(float(torch.as_tensor(v).sub(torch.as_tensor(before[k])).abs().max()))
             for k, v in learned_time_constants(net).items()}
    assert all((m > 1e-3) if steps > 1 else (m == 0.0) for m in moved.values()), moved
