"""Energy accounting: SOPs and MACs against hand counts on small layers."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from evstereo.snn import EnergyMeter, SpikingConv, format_energy_table, set_modes


def brute_force_sops(x: torch.Tensor, out_channels: int, k: int, stride: int, pad: int) -> int:
    """Count, spike by spike, the kernel taps whose output position exists (2D, groups 1)."""
    n, c, h, w = x.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    total = 0
    for b, ci, i, j in torch.nonzero(x).tolist():
        for di in range(k):
            for dj in range(k):
                oi, oj = i + pad - di, j + pad - dj  # output (oi/stride, oj/stride) uses tap (di, dj)
                if oi % stride or oj % stride:
                    continue
                if 0 <= oi // stride < ho and 0 <= oj // stride < wo:
                    total += out_channels
    return total


def test_conv_fed_known_spikes_counts_taps_inside_the_image():
    conv = nn.Conv2d(2, 5, 3, padding=1, bias=False)
    x = torch.zeros(1, 2, 6, 7)
    x[0, 0, 0, 0] = 1  # corner: 4 taps land inside
    x[0, 1, 0, 3] = 1  # top edge: 6
    x[0, 0, 3, 3] = 1  # interior: 9
    x[0, 1, 5, 6] = 1  # opposite corner: 4
    r = EnergyMeter(conv).measure(x)
    assert r["sops"] == 5 * (4 + 6 + 9 + 4)
    assert r["macs"] == 0
    (layer,) = r["layers"]
    assert layer["kind"] == "spiking" and layer["input_spike_rate"] == pytest.approx(4 / x.numel())
    assert r["energy_mj"] == pytest.approx(r["sops"] * 0.9e-9)


@pytest.mark.parametrize("stride,pad,k", [(1, 1, 3), (2, 1, 3), (1, 0, 3), (2, 2, 5)])
def test_random_spikes_match_brute_force(stride, pad, k):
    torch.manual_seed(stride * 10 + pad + k)
    conv = nn.Conv2d(3, 4, k, stride=stride, padding=pad)
    x = (torch.rand(2, 3, 9, 11) < 0.2).float()
    r = EnergyMeter(conv).measure(x, frames=1)
    assert r["sops"] == brute_force_sops(x, 4, k, stride, pad)


def test_3d_conv_sops_and_macs():
    conv = nn.Conv3d(1, 3, 3, padding=1, bias=False)
    x = torch.zeros(1, 1, 4, 5, 5)
    x[0, 0, 0, 0, 0] = 1  # corner of the volume: 2 x 2 x 2 taps
    x[0, 0, 2, 2, 2] = 1  # inside: 27
    assert EnergyMeter(conv).measure(x)["sops"] == 3 * (8 + 27)
    analog = torch.rand(1, 1, 4, 5, 5) + 0.1
    r = EnergyMeter(conv).measure(analog)
    assert r["macs"] == 3 * 4 * 5 * 5 * 1 * 27 and r["sops"] == 0


def test_analog_conv_macs_by_formula():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    x = torch.randn(3, 4, 10, 12)
    r = EnergyMeter(conv, pj_per_mac=5.0).measure(x)
    ho, wo = 5, 6
    expected = 6 * ho * wo * (4 // 2) * 9  # per frame: C_out x H_out x W_out x C_in/groups x k^2
    assert r["macs"] == expected
    assert r["layers"][0]["kind"] == "analog" and r["layers"][0]["input_spike_rate"] is None
    assert r["energy_mj"] == pytest.approx(expected * 5.0e-9)


def test_linear_and_transposed_conv():
    lin = nn.Linear(6, 4)
    x = torch.tensor([[1.0, 0, 0, -1, 0, 1]])  # signed spikes count too
    assert EnergyMeter(lin).measure(x)["sops"] == 3 * 4
    assert EnergyMeter(lin).measure(torch.full((2, 6), 0.3))["macs"] == 6 * 4
    up = nn.ConvTranspose2d(1, 2, 2, stride=2)
    s = torch.zeros(1, 1, 3, 3)
    s[0, 0, 1, 1] = 1
    assert EnergyMeter(up).measure(s)["sops"] == 2 * 4
    assert EnergyMeter(up).measure(torch.rand(1, 1, 3, 3) + 0.1)["macs"] == 9 * 2 * 4


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = SpikingConv(2, 4)
        self.b = SpikingConv(4, 4)
        self.head = nn.Conv2d(4, 1, 1)
        with torch.no_grad():  # excitatory weights so that both layers fire in eval mode
            for conv in (self.a.synapse[0], self.b.synapse[0]):
                conv.weight.abs_()

    def forward(self, x):
        return self.head(self.b(self.a(x)).mean(1))


def test_time_steps_are_summed_and_reported_per_frame_and_hybrid_switch_is_followed():
    torch.manual_seed(0)
    net = Block().eval()
    x = (torch.rand(3, 5, 2, 8, 8) < 0.3).float()  # [B, T, C, H, W]
    r = EnergyMeter(net).measure(x)
    names = [layer["name"] for layer in r["layers"]]
    assert names == ["a.synapse.0", "b.synapse.0", "head"]
    kinds = {layer["name"]: layer["kind"] for layer in r["layers"]}
    assert kinds == {"a.synapse.0": "spiking", "b.synapse.0": "spiking", "head": "analog"}
    # layer a sees all 5 steps of all 3 samples: per frame = total / 3
    total = brute_force_sops(x.flatten(0, 1), 4, 3, 1, 1)
    assert r["layers"][0]["sops"] == pytest.approx(total / 3)
    assert r["layers"][0]["calls"] == 1 and r["frames"] == 3
    assert r["layers"][2]["macs"] == 8 * 8 * 4  # the head sees the time-averaged rate: analog, 1 step
    # switch layer a to analog (BN + ReLU): layer b now receives graded values -> MACs
    set_modes(net, {"a": "analog"})
    r2 = EnergyMeter(net).measure(x)
    b2 = r2["layers"][1]
    assert b2["kind"] == "analog" and b2["sops"] == 0 and b2["macs"] == 5 * 4 * 8 * 8 * 4 * 9
    assert r2["layers"][0]["sops"] == r["layers"][0]["sops"]  # its own input is unchanged
    assert r2["energy_mj"] > r["energy_mj"]


def test_table_json_and_forced_kinds(tmp_path):
    net = Block().eval()
    x = (torch.rand(1, 2, 2, 6, 6) < 0.3).float()
    meter = EnergyMeter(net, kinds={"head": "spiking"}, pj_per_ac=1.0)
    r = meter.measure(x)
    assert all(layer["kind"] == "spiking" for layer in r["layers"])
    text = format_energy_table(r)
    assert "a.synapse.0" in text and "total per frame" in text and EnergyMeter.table(r) == text
    path = tmp_path / "energy.json"
    EnergyMeter.to_json(r, path)
    loaded = json.loads(path.read_text())
    assert loaded["sops"] == r["sops"] and len(loaded["layers"]) == 3
    assert math.isclose(loaded["energy_mj"], r["sops"] * 1e-9)
    with pytest.raises(ValueError, match="kind"):
        EnergyMeter(net, kinds={"head": "digital"})


def test_the_stereo_networks_upsampling_and_read_out_are_counted_as_macs():
    """By hand, tiny config (levels L at 1/3, max_disparity 3L), a 30 x 45 input padded to a
    multiple of 3 * 2**max_level: trilinear upsampling 8 MACs per full-resolution score,
    soft-argmin 3 per level and pixel; they sit in the report as analog "function" rows."""
    import yaml

    from conftest import ROOT
    from evstereo.models import build_stereo_net

    net = build_stereo_net(yaml.safe_load((ROOT / "configs" / "model" / "tiny.yaml").read_text())).eval()
    left, right = torch.rand(2, 1, 1, 5, 30, 45).round().unbind(0)
    report = EnergyMeter(net).measure(left, right)
    mult = 3 * 2 ** max(net.feature_net.max_level, net.matching_net.max_level)
    hp, wp = -(-30 // mult) * mult, -(-45 // mult) * mult
    d = 3 * net.config.levels
    rows = {r["name"]: r for r in report["layers"] if r["type"] == "function"}
    assert rows["upsampling (trilinear)"]["macs"] == 8 * d * hp * wp
    assert rows["read-out (soft_argmin)"]["macs"] == 3 * d * 30 * 45
    assert all(r["kind"] == "analog" and r["sops"] == 0 for r in rows.values())
    layers_only = sum(r["macs"] for r in report["layers"] if r["type"] != "function")
    assert report["macs"] == pytest.approx(layers_only + 8 * d * hp * wp + 3 * d * 30 * 45)


def test_memory_aware_estimate_and_ann_equivalent_by_hand():
    """One spiking 3x3 conv fed 3 interior spikes: 3 x 9 x 4 SOPs, each 3 memory accesses, plus 2
    per neuron update; the same layer as an ANN: every output's 2 x 9 MACs, 2 accesses each,
    and one write per output."""
    conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
    x = torch.zeros(1, 2, 5, 6)
    x[0, 0, 2, 2] = x[0, 1, 2, 3] = x[0, 0, 3, 3] = 1
    meter = EnergyMeter(conv)
    r = meter.measure(x)
    outputs = 4 * 5 * 6
    assert r["sops"] == 3 * 9 * 4
    assert r["memory_accesses"] == 3 * r["sops"] + 2 * outputs
    assert r["energy_memory_mj"] == pytest.approx(r["energy_mj"] + r["memory_accesses"] * 5.0e-9)
    ann = meter.ann_equivalent(x)
    assert ann["sops"] == 0 and ann["macs"] == outputs * 2 * 9
    assert ann["memory_accesses"] == 2 * ann["macs"] + outputs
    assert ann["energy_mj"] > r["energy_mj"] and ann["energy_memory_mj"] > r["energy_memory_mj"]


def test_first_matching_conv_is_counted_without_the_volume():
    """As concat_volume_conv3d computes it: 2k 2D convolutions (k x O outputs each) of the left and
    right features, the sums into every level, and the border columns' share of the 3D conv."""
    from evstereo.models.cost_volume import concat_cost_volume, volume_free_counts

    g = torch.Generator().manual_seed(0)
    left = (torch.rand(1, 2, 6, 20, generator=g) < 0.2).float()
    right = (torch.rand(1, 2, 6, 20, generator=g) < 0.2).float()
    vol = concat_cost_volume(left, right, 12)
    conv = nn.Conv3d(4, 3, 3, padding=1, bias=False)
    adds = 3 * 6 * 20 * 2 * 2 + 3 * 12 * 6 * 20
    acs, macs = volume_free_counts(conv, vol, spiking=False)
    assert acs == adds and macs == 2 * 6 * 20 * 3 * 3 * 2 * 9 + 3 * 12 * 6 * 4 * 4 * 27
    dense = EnergyMeter(conv, kinds={"*": "analog"}).measure(vol)["macs"]
    assert dense == 3 * 12 * 6 * 20 * 4 * 27 and macs < dense / 2
    sops, none = volume_free_counts(conv, vol, spiking=True)
    plane = nn.Conv2d(2, 9, 3, padding=1, bias=False)
    taps = EnergyMeter(plane).measure(left)["sops"] + EnergyMeter(plane).measure(right)["sops"]
    border = EnergyMeter(nn.Conv3d(4, 3, 3, padding=1, bias=False)).measure(vol)["sops"] * 4 / 20
    assert none == 0 and sops == taps + adds + round(border)
