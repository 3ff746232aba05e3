"""Spiking core: surrogates, LIF dynamics and gradients, time constants, hybrid modes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evstereo.snn import (
    LIF,
    SpikingConv,
    SpikingLinear,
    TimeConstants,
    atan_spike,
    dspike,
    get_backend,
    get_modes,
    learned_time_constants,
    lif_multistep,
    set_backend,
    set_modes,
    sigmoid_spike,
    spike,
)


def dspike_formula(x: torch.Tensor, b: float) -> torch.Tensor:
    """docs/method.md §2.1, written as printed."""
    g = b * (1 - torch.tanh(b * x) ** 2) / (2 * math.tanh(b / 2))
    return torch.where(x.abs() < 0.5, g, torch.zeros_like(x))


def naive_lif(current, decay, threshold=0.5, b=3.0, reset="hard", surrogate="dspike"):
    """The eager autograd reference: one Python step per time step."""
    d = decay
    if torch.is_tensor(d) and d.dim() == 1:
        d = d.reshape((1, -1) + (1,) * (current.dim() - 3))
    u = torch.zeros_like(current[:, 0])
    s = torch.zeros_like(u)
    out = []
    for t in range(current.shape[1]):
        u = d * u * (1 - s) + current[:, t] if reset == "hard" else d * (u - threshold * s) + current[:, t]
        s = spike(u, threshold, b, surrogate)
        out.append(s)
    return torch.stack(out, 1)


# ------------------------------------------------------------------------------ surrogates


@pytest.mark.parametrize("b", [1.0, 2.2, 3.0, 4.6, 6.0])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_dspike_backward_equals_formula_and_is_zero_outside_support(b, threshold):
    x = torch.linspace(-1.0, 1.0, 2001, dtype=torch.float64)
    u = (x + threshold).requires_grad_()
    s = dspike(u, threshold, b)
    assert torch.equal(s, (u > threshold).to(s.dtype))
    s.backward(torch.ones_like(s))
    torch.testing.assert_close(u.grad, dspike_formula(x, b), rtol=1e-12, atol=1e-12)
    outside = x.abs() >= 0.5
    assert outside.sum() > 900 and torch.all(u.grad[outside] == 0)
    assert torch.all(u.grad[~outside] > 0)


def test_dspike_scales_incoming_gradient_and_b_tensor_works():
    u = torch.tensor([0.45, 0.5, 0.7, 1.2], requires_grad=True)
    g = torch.tensor([2.0, -1.0, 3.0, 5.0])
    dspike(u, 0.5, torch.tensor(3.0)).backward(g)
    torch.testing.assert_close(u.grad, g * dspike_formula(u.detach() - 0.5, 3.0))


def test_dspike_integrates_to_one_and_sharpens_with_b():
    x = torch.linspace(-0.5, 0.5, 100001, dtype=torch.float64)
    for b in (1.0, 3.0, 6.0):
        assert torch.trapezoid(dspike_formula(x, b), x).item() == pytest.approx(1.0, abs=1e-4)  # endpoints: open support
    assert dspike_formula(torch.tensor([0.0]), 6.0) > dspike_formula(torch.tensor([0.0]), 1.0)


def test_sigmoid_and_atan_surrogates():
    x = torch.linspace(-2, 2, 401, dtype=torch.float64)
    u = (x + 0.5).requires_grad_()
    sigmoid_spike(u, 0.5, 4.0).backward(torch.ones_like(u))
    sg = torch.sigmoid(4.0 * x)
    torch.testing.assert_close(u.grad, 4.0 * sg * (1 - sg))
    u.grad = None
    atan_spike(u, 0.5, 2.0).backward(torch.ones_like(u))
    torch.testing.assert_close(u.grad, 1.0 / (1 + (math.pi / 2 * 2.0 * x) ** 2))
    with pytest.raises(ValueError, match="surrogate"):
        spike(u, 0.5, 3.0, "gauss")


# ------------------------------------------------------------------------------ LIF dynamics


def _lif(current, **kw):
    return LIF(**kw)(torch.tensor(current, dtype=torch.float64).reshape(1, -1, 1))[0, :, 0].tolist()


def test_hard_and_soft_reset_follow_the_equations():
    # hard: u = 0.9 (spike), then 0.2 * 0.9 * 0 + 0.45 = 0.45: silent
    assert _lif([0.9, 0.45, 0.0, 0.0]) == [1, 0, 0, 0]
    # soft: u = 0.9 (spike), then 0.2 * (0.9 - 0.5) + 0.45 = 0.53: spikes again
    assert _lif([0.9, 0.45, 0.0, 0.0], reset="soft") == [1, 1, 0, 0]
    # leak: 0.25 per step with decay 0.2 converges to 0.3125 < 0.5 and never fires
    assert _lif([0.25] * 8) == [0] * 8


def test_if_neuron_is_decay_one():
    # 0.25, 0.5 (not > 0.5), 0.75 spike; hard reset restarts from 0
    assert _lif([0.25] * 7, decay=1.0) == [0, 0, 1, 0, 0, 1, 0]
    # soft reset keeps the residual 0.25: 0.25, 0.5, 0.75 s, 0.5, 0.75 s, 0.5, 0.75 s
    assert _lif([0.25] * 7, decay=1.0, reset="soft") == [0, 0, 1, 0, 1, 0, 1]


def test_membranes_start_at_zero_for_every_sample_and_call():
    lif = LIF()
    x = torch.rand(3, 6, 4, 5, 5)
    out = lif(x)
    assert torch.equal(lif(x), out)  # no state kept between calls
    assert torch.equal(lif(x[1:2]), out[1:2])  # samples are independent
    assert torch.equal(lif(x[:, :1]), (x[:, :1] > 0.5).to(x.dtype))  # first step: u = I


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("shape", [(2, 5, 3, 6, 7), (2, 4, 3, 3, 4, 5), (3, 4, 6)])
def test_lif_matches_naive_loop_values_and_gradients(reset, shape):
    torch.manual_seed(0)
    current = (torch.randn(*shape, dtype=torch.float64) * 0.6 + 0.3).requires_grad_()
    w = torch.randn(shape[2], dtype=torch.float64, requires_grad=True)
    g = torch.randn(*shape, dtype=torch.float64)
    grads = []
    for fn in (lif_multistep, naive_lif):
        s = fn(current, torch.sigmoid(w), reset=reset)
        (s * g).sum().backward()
        grads.append((s.detach(), current.grad.clone(), w.grad.clone()))
        current.grad = w.grad = None
    (s1, gi1, gw1), (s2, gi2, gw2) = grads
    assert torch.equal(s1, s2)
    assert s1.sum() > 0 and (s1 == 0).sum() > 0
    torch.testing.assert_close(gi1, gi2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gw1, gw2, rtol=1e-10, atol=1e-12)


def test_single_time_step_is_a_plain_threshold():
    current = torch.tensor([[[0.2, 0.7, 0.5]]], requires_grad=True)  # [B=1, T=1, C=3]
    w = torch.zeros((), requires_grad=True)
    s = lif_multistep(current, torch.sigmoid(w))
    assert s.tolist() == [[[0.0, 1.0, 0.0]]]
    s.sum().backward()
    torch.testing.assert_close(current.grad, dspike_formula(current.detach() - 0.5, 3.0))
    assert w.grad == 0  # the decay never acts with one step


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_one_step_without_gradient_gives_the_kernels_spikes_and_keeps_the_layout(layout):
    # inference at T = 1 skips the kernel: the same spikes (values at the threshold included)
    torch.manual_seed(0)
    current = torch.randn(2, 1, 4, 3, 6, 7)
    current[0, 0, 1, 1, 2, 3] = 0.5  # exactly at the threshold: no spike
    kernel, _ = lif_multistep(current, 0.2, 0.5, return_state=True)  # the kernel path
    if layout == "channels_last":  # a [B*T, C, D, H, W] tensor stored channels-last, seen as 6D
        current = current.flatten(0, 1).contiguous(memory_format=torch.channels_last_3d).unflatten(0, (2, 1))
    with torch.no_grad():
        fast = lif_multistep(current, 0.2, 0.5)
    assert torch.equal(fast, kernel) and fast.dtype == current.dtype and fast.stride() == current.stride()
    assert fast[0, 0, 1, 1, 2, 3].item() == 0 and 0 < fast.mean().item() < 1


def test_detach_reset_cuts_the_reset_path():
    torch.manual_seed(1)
    current = (torch.randn(2, 6, 3, dtype=torch.float64) + 0.5).requires_grad_()
    lif_multistep(current, 0.5, detach_reset=True).sum().backward()
    g_detached = current.grad.clone()
    current.grad = None
    u = torch.zeros_like(current[:, 0])
    s = torch.zeros_like(u)
    out = []
    for t in range(current.shape[1]):
        u = 0.5 * u * (1 - s.detach()) + current[:, t]
        s = dspike(u, 0.5, 3.0)
        out.append(s)
    torch.stack(out, 1).sum().backward()
    torch.testing.assert_close(g_detached, current.grad)


def test_dtype_follows_input_and_bad_shapes_are_rejected():
    x = torch.rand(1, 3, 2, 4, dtype=torch.float64)
    assert LIF()(x).dtype == torch.float64
    assert LIF()(x.float()).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[B, T, C"):
        lif_multistep(torch.rand(4, 4))
    with pytest.raises(ValueError, match="channels"):
        lif_multistep(x, torch.full((5,), 0.2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_lif_on_cuda_matches_cpu():
    x = torch.rand(2, 4, 3, 8, 8)
    assert torch.equal(LIF().cuda()(x.cuda()).cpu(), LIF()(x))


def test_compiled_kernels_match_eager():
    """The torch.compile path (used for large tensors) gives the same spikes and gradients."""
    torch.manual_seed(2)
    shape = (1, 3, 2, 6, 5)
    current = (torch.randn(*shape) * 0.6 + 0.3).requires_grad_()
    w = torch.zeros(2, requires_grad=True)
    results = []
    old = get_backend()
    try:
        for backend in ("compile", "eager"):
            set_backend(backend)
            s = lif_multistep(current, torch.sigmoid(w), reset="hard")
            (s * torch.arange(s.numel()).reshape(shape)).sum().backward()
            results.append((s.detach(), current.grad.clone(), w.grad.clone()))
            current.grad = w.grad = None
    finally:
        set_backend(old)
    (s1, g1, w1), (s2, g2, w2) = results
    assert torch.equal(s1, s2)
    torch.testing.assert_close(g1, g2)
    torch.testing.assert_close(w1, w2)
    with pytest.raises(ValueError):
        set_backend("cuda-graphs")


def test_auto_backend_falls_back_to_eager_when_compilation_fails(monkeypatch):
    from evstereo.snn import lif_kernels

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(lif_kernels, "COMPILE_MIN_NUMEL", 1)
    monkeypatch.setattr(lif_kernels, "_kernel_cache", {})
    monkeypatch.setattr(lif_kernels, "_compile_failed", False)
    monkeypatch.setattr(lif_kernels, "_backend", "auto")
    x = torch.rand(1, 3, 2, 4)
    with pytest.warns(RuntimeWarning, match="eager"):
        out = lif_multistep(x)
    assert torch.equal(out, naive_lif(x, 0.2)) and lif_kernels._compile_failed
    set_backend("compile")
    with pytest.raises(RuntimeError, match="compiler"):
        lif_multistep(x)


# ------------------------------------------------------------------------------ time constants


class TinyNet(nn.Module):
    """Two neuron types sharing one registry, as a stereo model would."""

    def __init__(self) -> None:
        super().__init__()
        self.time_constants = TimeConstants({"stem": 0.2, "feature": 0.2}, channels={"feature": 6})
        tc = self.time_constants
        self.stem = SpikingConv(2, 6, time_constants=tc, neuron_type="stem")
        self.f1 = SpikingConv(6, 6, time_constants=tc, neuron_type="feature")
        self.f2 = SpikingConv(6, 6, time_constants=tc, neuron_type="feature")
        self.head = nn.Conv2d(6, 1, 1)

    def forward(self, x):
        y = self.f2(self.f1(self.stem(x)))
        return self.head(y.mean(1))


def test_gradients_reach_time_constants_and_training_changes_them():
    torch.manual_seed(0)
    net = TinyNet()
    x = (torch.rand(4, 5, 2, 8, 8) < 0.3).float()
    target = torch.rand(4, 1, 8, 8)
    loss = nn.functional.mse_loss(net(x), target)
    loss.backward()
    w = net.time_constants.w
    assert w["stem"].grad is not None and w["stem"].grad.abs() > 0
    assert w["feature"].grad.shape == (6,) and w["feature"].grad.abs().sum() > 0
    before = net.time_constants.values()
    assert before["stem"] == pytest.approx(0.2) and before["feature"] == pytest.approx([0.2] * 6)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(15):
        opt.zero_grad()
        nn.functional.mse_loss(net(x), target).backward()
        opt.step()
    after = learned_time_constants(net)
    assert set(after) == {"stem", "feature"}
    assert abs(after["stem"] - 0.2) > 1e-3
    assert max(abs(a - 0.2) for a in after["feature"]) > 1e-3
    assert all(0 < a < 1 for a in after["feature"])
    taus = net.time_constants.taus()
    assert taus["stem"] == pytest.approx(1 / (1 - after["stem"]))


def test_time_constants_are_saved_in_the_state_dict():
    net = TinyNet()
    with torch.no_grad():
        net.time_constants.w["stem"].fill_(1.5)
    state = net.state_dict()
    assert "time_constants.w.stem" in state and "time_constants.w.feature" in state
    assert not any(k.endswith("w.stem") and not k.startswith("time_constants") for k in state)
    assert "stem.neuron.b" in state  # the surrogate temperature too
    fresh = TinyNet()
    fresh.load_state_dict(state)
    assert fresh.time_constants.values()["stem"] == pytest.approx(torch.sigmoid(torch.tensor(1.5)).item())
    # neurons read the registry live, so the loaded value is the one in use
    assert fresh.stem.neuron.decay().item() == pytest.approx(fresh.time_constants.values()["stem"])


def test_time_constant_registry_validation():
    tc = TimeConstants(["a"], bounds=(0.1, 0.9), init=0.5)
    assert tc.values() == {"a": pytest.approx(0.5)}
    LIF(time_constants=tc, neuron_type="b")  # undeclared types are added on first use
    assert tc.names() == ["a", "b"]
    with pytest.raises(ValueError, match="inside"):
        tc.add("c", 0.95)
    with pytest.raises(ValueError, match="already"):
        tc.add("a")
    with pytest.raises(ValueError, match="neither"):
        LIF(time_constants=tc)
    frozen = TimeConstants(["x"], learnable=False)
    assert not frozen.w["x"].requires_grad


# ------------------------------------------------------------------------------ hybrid layers


def test_modes_switch_between_spiking_analog_and_readout():
    torch.manual_seed(0)
    layer = SpikingConv(3, 4, bn=False, bias=True)
    x = torch.randn(2, 3, 3, 6, 6)
    cur = layer.synapse(x.flatten(0, 1)).unflatten(0, (2, 3))
    out = layer(x)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    layer.mode = "analog"
    torch.testing.assert_close(layer(x), torch.relu(cur))
    layer.mode = "readout"
    expected = torch.stack([cur[:, 0], 0.2 * cur[:, 0] + cur[:, 1], 0.04 * cur[:, 0] + 0.2 * cur[:, 1] + cur[:, 2]], 1)
    torch.testing.assert_close(layer(x), expected)
    with pytest.raises(ValueError, match="mode"):
        layer.mode = "ann"


def test_set_modes_by_config_patterns():
    net = TinyNet()
    modes = set_modes(net, {"*": "spiking", "stem": "analog", "f2.neuron": "readout"})
    assert modes == {"stem.neuron": "analog", "f1.neuron": "spiking", "f2.neuron": "readout"}
    assert get_modes(net) == modes
    assert set_modes(net, "analog") == dict.fromkeys(modes, "analog")
    with pytest.raises(ValueError, match="matches no"):
        set_modes(net, {"matching.*": "analog"})


def test_spiking_conv_3d_and_linear_shapes():
    conv3 = SpikingConv(2, 4, dim=3, stride=2)
    assert conv3(torch.rand(1, 3, 2, 6, 8, 8)).shape == (1, 3, 4, 3, 4, 4)
    lin = SpikingLinear(5, 7)
    assert lin(torch.rand(2, 4, 5)).shape == (2, 4, 7)
