"""Stateful streaming: LIF calls that continue each other, a stateful network streamed window by
window equal to one call over its context windows, evaluation and the live engine on a stateful
network. (Time constants learning through the carried state at T = 1: test_stereo_net.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT
from evstereo.inference.prediction import Predictor, context_windows
from evstereo.models import build_stereo_net, load_checkpoint, shipped_checkpoint
from evstereo.snn import LIF, lif_multistep, membrane_readout


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_lif_calls_continue_each_other_exactly(reset):
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3, 4, 5)
    decay = torch.tensor([0.3, 0.6, 0.9])  # one per channel
    whole = lif_multistep(x, decay, reset=reset)
    a, state = lif_multistep(x[:, :2], decay, reset=reset, return_state=True)
    b, state = lif_multistep(x[:, 2:6], decay, reset=reset, initial=state, return_state=True)
    c = lif_multistep(x[:, 6:], decay, reset=reset, initial=state)
    assert torch.equal(whole, torch.cat([a, b, c], 1))
    assert whole.sum() > 0 and not torch.equal(c, lif_multistep(x[:, 6:], decay, reset=reset))  # the state mattered
    u1, s1 = membrane_readout(x[:, :3], 0.5, return_state=True)
    assert torch.allclose(membrane_readout(x, 0.5), torch.cat([u1, membrane_readout(x[:, 3:], 0.5, initial=s1)], 1))


def test_a_stateful_neuron_carries_and_resets():
    torch.manual_seed(1)
    x = torch.randn(1, 4, 2, 6)
    lif = LIF(decay=0.8)
    whole = lif(x)
    lif.stateful = True
    parts = torch.cat([lif(x[:, :2]), lif(x[:, 2:])], 1)
    assert torch.equal(whole, parts)
    lif.reset_state()
    assert torch.equal(lif(x[:, 2:]), LIF(decay=0.8)(x[:, 2:]))  # from rest again
    lif(torch.randn(1, 2, 2, 7))  # another size: from rest, no shape error
    assert lif._state.shape == (1, 2, 7)


def _tiny(**over):
    cfg = yaml.safe_load((ROOT / "configs" / "model" / "tiny.yaml").read_text())
    cfg.update(over)
    torch.manual_seed(0)
    return build_stereo_net(cfg)


def _pair(steps, channels, seed=0):
    g = torch.Generator().manual_seed(seed)
    left = (torch.rand(1, steps, channels, 48, 72, generator=g) < 0.15).float()
    return left, torch.roll(left, shifts=-4, dims=-1)


def test_context_windows_need_a_stateful_network():
    with pytest.raises(Exception, match="context_windows > 1 needs stateful"):
        _tiny(context_windows=3)


def test_streaming_window_by_window_equals_one_call_over_the_context():
    spec = _tiny(stateful=True, context_windows=3, window_us=10_000)
    assert spec.input_spec.as_dict() == {"representation": "sbt", "bins": 5, "time_steps": 1, "window_us": 10_000}
    assert spec.context_spec.as_dict() == {"representation": "sbt", "bins": 15, "time_steps": 3, "window_us": 30_000}
    # trained weights (an untrained network in eval mode barely fires), made stateful
    net = load_checkpoint(shipped_checkpoint()).eval()
    net.config.stateful, net.config.context_windows = True, 3
    left, right = _pair(3, 5)
    with torch.no_grad():
        whole = net.cost(left, right)  # one call, the read-out on the last window
        net.streaming(True)
        outs = [net.cost(left[:, t : t + 1], right[:, t : t + 1]) for t in range(3)]
        net.streaming(False)
        alone = net.cost(left[:, 2:], right[:, 2:])  # the last window from rest
    assert torch.allclose(whole, outs[-1], atol=1e-5) and whole.std() > 0
    assert not torch.allclose(whole, alone, atol=1e-3), "the carried membranes changed the output"
    whole = net.readout(whole).clamp(0, net.max_disparity)
    # the Predictor streams a context input the same way
    assert len(context_windows(net, left)) == 3
    with torch.no_grad():
        disparity, confidence = Predictor(net, 48, 72, scale=1.0, event_radius=0)(left, right)
    assert torch.allclose(disparity, whole, atol=1e-5) and confidence.shape == whole.shape


class _StatefulActivity(torch.nn.Module):
    """Stand-in stateful network: counts the windows since its last reset as its 'disparity'."""

    def __init__(self):
        super().__init__()
        from types import SimpleNamespace

        from evstereo.events.input_spec import InputSpec

        self.config = SimpleNamespace(stateful=True)
        self.input_spec = InputSpec(window_us=10_000)
        self.native_resolution, self.windows, self.streaming_on = True, 0, False

    def streaming(self, on=True):
        self.streaming_on, self.windows = on, 0

    def reset_state(self):
        self.windows = 0

    def forward(self, left, right):
        self.windows += 1
        return torch.full(left.shape[-2:], float(self.windows))[None]


def test_the_engine_streams_contiguous_windows_and_resets_on_a_seek(random_recording):
    from evstereo.inference import EngineConfig, StreamingEngine
    from evstereo.recordings import open_recording

    with open_recording(random_recording) as rec:
        model = _StatefulActivity()
        eng = StreamingEngine(rec, model, EngineConfig(max_speed=True, max_frames=12, event_radius=0))
        assert model.streaming_on and eng.stateful and eng.schedule_kind == "regular grid"
        ends = eng.schedule
        assert (np.diff(ends) == 10_000).all()  # one window after another, not the GT's 20 Hz
        frames = list(eng.frames())
        assert [int(np.nanmax(f.disparity)) for f in frames] == list(range(1, 13))  # state carried throughout
        assert eng.stats.summary()["state_resets"] == 1
        f = eng.process(0, int(ends[3]))  # a seek back: from rest
        assert int(np.nanmax(f.disparity)) == 1 and eng.stats.state_resets == 2


def test_evaluation_streams_the_context_and_counts_energy_per_output(random_recording):
    """A stateful network is scored on its last window after its context windows were streamed;
    its energy is one output's (the last window's), not the whole context's."""
    from evstereo.datasets.samples import SampleSpec
    from evstereo.events.input_spec import sample_input
    from evstereo.inference.evaluation import evaluate, plan_frames

    plain = load_checkpoint(shipped_checkpoint()).eval()
    plain.config.window_us = 25_000
    net = load_checkpoint(shipped_checkpoint()).eval()
    net.config.window_us, net.config.stateful, net.config.context_windows = 25_000, True, 2
    assert sample_input(net).window_us == 50_000 and sample_input(plain).window_us == 25_000
    plan = plan_frames([(random_recording, None)], SampleSpec.for_input(sample_input(net)), max_frames=1)
    one = evaluate(plain, plan, scale=0.5)
    both = evaluate(net, plan, scale=0.5)
    assert both.energy["frames_measured"] == 1
    # the last 25 ms window with 25 ms of carried state: about one window's energy, not two
    assert 0.5 < both.energy["energy_mj"] / one.energy["energy_mj"] < 1.5
    assert both.metrics != one.metrics  # the context changed the prediction


def test_a_streaming_network_starts_from_the_stateless_weights():
    from evstereo.training.modules import StereoTrainModule

    cfg = yaml.safe_load((ROOT / "configs" / "model" / "fast_stream.yaml").read_text())
    genotype = cfg.pop("genotype")
    module = StereoTrainModule(net=cfg, genotype=genotype, init=str(shipped_checkpoint()))
    shipped = load_checkpoint(shipped_checkpoint())
    assert module.model.config.stateful and module.model.context_spec.window_us == 50_000
    assert all(torch.equal(a, b) for a, b in zip(module.model.state_dict().values(), shipped.state_dict().values()))
    cfg["feature_filters"] = 2  # other weights: refused
    with pytest.raises(ValueError, match="differs from the model section's"):
        StereoTrainModule(net=cfg, genotype=genotype, init=str(shipped_checkpoint()))
