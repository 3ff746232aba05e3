"""Input scale at inference: the automatic factor, the network's nominal size in its checkpoint, the
Predictor's resampling and restoring, and the engine and evaluation on a simulated 128x128 sensor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ROOT
from evstereo.datasets.scaling import NOMINAL_FB, NOMINAL_HW, parse_scale, resolve_scale
from evstereo.errors import InputError
from evstereo.events.input_spec import InputSpec
from evstereo.inference.prediction import Predictor, model_scale
from evstereo.models import SGBMStereo, build_stereo_net, load_checkpoint, save_checkpoint

TINY = ROOT / "configs" / "model" / "tiny.yaml"


class Constant(torch.nn.Module):
    """Stand-in model: 9 px everywhere at whatever size it is given; remembers that size."""

    input_spec = InputSpec()

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        self.seen = tuple(left.shape[-2:])
        return torch.full((left.shape[0], *left.shape[-2:]), 9.0)


def test_scale_options_by_hand():
    # sqrt(260 * 346 / (128 * 128)) = 2.343 -> nearest multiple of 0.25: 2.25; 640x480: 0.541 -> 0.5
    assert resolve_scale("auto", 128, 128) == 2.25 and resolve_scale("auto", 480, 640) == 0.5
    assert resolve_scale("auto", *NOMINAL_HW) == 1.0 and resolve_scale("AUTO", 128, 128, (128, 128)) == 1.0
    assert resolve_scale("1.5", 128, 128) == 1.5 and parse_scale("auto") == "auto"
    for bad in ("0", "-1", "fast", "9"):
        with pytest.raises(ValueError):
            parse_scale(bad)


def test_nominal_size_travels_in_the_checkpoint_and_sets_the_automatic_scale(tmp_path):
    net = build_stereo_net({**_tiny_config(), "nominal_size": [128, 128]})
    save_checkpoint(net, tmp_path / "n.pt")
    back = load_checkpoint(tmp_path / "n.pt")
    assert back.nominal_size == (128, 128) and back.config.nominal_size == [128, 128]
    assert model_scale(back, "auto", 128, 128) == 1.0 and model_scale(back, "auto", 256, 256) == 0.5
    old = build_stereo_net(_tiny_config())  # no nominal_size (checkpoints from before): the DAVIS346's
    assert old.nominal_size is None and model_scale(old, "auto", 128, 128) == 2.25
    assert model_scale(Constant(), "auto", 128, 128) == 2.25  # any model without the attribute too
    assert model_scale(SGBMStereo(), 2.0, 128, 128) == 1.0  # the baseline always runs at the sensor's pixels
    with pytest.raises(InputError, match="nominal_size"):
        build_stereo_net({**_tiny_config(), "nominal_size": [128]})


def _tiny_config() -> dict:
    import yaml

    return yaml.safe_load(TINY.read_text())


def test_predictor_resamples_the_input_and_restores_the_sensor_pixels():
    model = Constant()
    assert Predictor(model, 128, 128, "auto").scale == 2.25  # the rule's factor, before any frame
    p = Predictor(model, 128, 128, 2.25, event_radius=4.5)
    assert p.network_size == (288, 288)
    left = torch.zeros(1, 1, 5, 128, 128)
    left[0, 0, 2, 64, 64] = 1.0
    d, c = p(left, left.clone())
    assert model.seen == (288, 288)
    assert d.shape == c.shape == (1, 128, 128)
    # 9 px at the network's scale are 9 / 2.25 = 4 px of the sensor
    torch.testing.assert_close(d, torch.full((1, 128, 128), 4.0))
    # the event gate is 4.5 network px = 2 sensor px around the one event
    yy, xx = np.mgrid[:128, :128]
    np.testing.assert_array_equal(c[0].numpy() > 0, (yy - 64) ** 2 + (xx - 64) ** 2 <= 4)
    off = Predictor(model, 128, 128, 1.0, event_radius=0)
    d1, c1 = off(left, left)
    assert model.seen == (128, 128) and float(d1.mean()) == 9.0 and bool((c1 == 1).all())


class Saturated(torch.nn.Module):
    """Stand-in for a network that cannot resolve large disparities: 12 px (of its input) everywhere."""

    input_spec = InputSpec()

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return torch.full((left.shape[0], *left.shape[-2:]), 12.0)


def test_auto_scale_keeps_the_factor_whose_disparity_explains_the_two_cameras():
    """Random dots 8 px apart on a 128x128 sensor: the rule says x2.25, where 12 network px are
    5.3 sensor px; of x2.25 * (1, 0.8, 0.67, 0.5) only x1.51 (12 / 1.51 = 7.96 px) matches the
    cameras, and the Predictor keeps it after its fitting frames, with no ground truth."""
    rng = np.random.default_rng(0)
    p = Predictor(Saturated(), 128, 128, "auto", event_radius=0)
    fixed = Predictor(Saturated(), 128, 128, 2.25, event_radius=0)
    for k in range(Predictor.FIT_FRAMES + 1):
        dots = (rng.random((128, 136)) < 0.05).astype(np.float32)
        left = torch.from_numpy(dots[:, :128].copy()).view(1, 1, 1, 128, 128)
        right = torch.from_numpy(dots[:, 8:].copy()).view(1, 1, 1, 128, 128)  # left x sees right x - 8
        d, _ = p(left, right)
        fixed(left, right)
        assert p.scale == pytest.approx(2.25 * 0.67) and p.rule_scale == 2.25
        torch.testing.assert_close(d, torch.full_like(d, 12 / (2.25 * 0.67)), atol=0.05, rtol=0)
    assert fixed.scale == 2.25  # a given factor is never changed
    blank = Predictor(Saturated(), 128, 128, "auto")
    blank(torch.zeros(1, 1, 1, 128, 128), torch.zeros(1, 1, 1, 128, 128))
    assert blank.scale == 2.25 and blank._fit_left == Predictor.FIT_FRAMES  # a frame with no events does not count
    # a window predicted between fit_state and restore_fit (live depth's untimed warm-up) does not count
    again = Predictor(Saturated(), 128, 128, "auto", event_radius=0)
    state = again.fit_state()
    again(left, right)
    assert again._fit_left == Predictor.FIT_FRAMES - 1 and again._fit_errors.any()
    again.restore_fit(state)
    assert again._fit_left == Predictor.FIT_FRAMES and not again._fit_errors.any() and again.scale == 2.25


def test_engine_and_evaluation_on_a_simulated_128x128_sensor(tmp_path, monkeypatch):
    monkeypatch.setenv("EVSTEREO_SNN_BACKEND", "eager")
    from evstereo.datasets.samples import SampleSpec
    from evstereo.inference import EngineConfig, StreamingEngine
    from evstereo.inference.evaluation import evaluate, plan_frames
    from evstereo.recordings import open_recording
    from evstereo.simulation import synthesize

    info = synthesize(tmp_path, "dvs", 0.2, seed=4, sensor="dvs128")
    torch.manual_seed(0)
    net = build_stereo_net(TINY).eval()
    with open_recording(info["data"]) as rec:
        assert (rec.height, rec.width) == (128, 128)
        # the rig's f*B is known, so the scale brings its disparities to the MVSEC rig's
        want = round(NOMINAL_FB / rec.fB / 0.25) * 0.25
        size = round(128 * want)
        assert want != 1.0
        eng = StreamingEngine(rec, net, EngineConfig(max_speed=True, max_frames=2))
        assert eng.scale == want and eng.network_size == (size, size)
        frames = list(eng.frames())
        assert eng.scale in [pytest.approx(want * f) for f in Predictor.FIT_FACTORS]
        f = frames[-1]
        assert f.disparity.shape == f.confidence.shape == f.gt_disparity.shape == (128, 128)
        assert np.nanmax(f.disparity) <= net.max_disparity / eng.scale + 1e-3  # in the sensor's pixels
        assert 0 <= f.confidence.min() and f.confidence.max() <= 1
        native = StreamingEngine(rec, net, EngineConfig(max_speed=True, max_frames=1, scale=1.0))
        assert native.network_size == (128, 128) and next(native.frames()).disparity.shape == (128, 128)
    plan = plan_frames([(info["data"], None)], SampleSpec.for_input(net.input_spec), max_frames=2)
    seen = []
    r = evaluate(net, plan, energy_frames=1, on_frame=seen.append).as_dict()
    rec_r = r["recordings"][str(info["data"])]
    assert rec_r["rule_scale"] == want and r["scale"] == rec_r["scale"]  # the fit may lower it (test above)
    assert rec_r["scale"] in [pytest.approx(want * f) for f in Predictor.FIT_FACTORS]
    assert rec_r["network_size"] == [round(128 * rec_r["scale"])] * 2
    assert rec_r["sensor"] == [128, 128] and rec_r["frames"] == r["frames"] == 2
    assert seen[0].prediction.shape == (128, 128) and seen[-1].scale == rec_r["scale"]
    assert r["energy_mj"] > 0 and r["energy"]["frames_measured"] == 1  # measured at the network's size
