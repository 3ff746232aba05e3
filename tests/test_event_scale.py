"""The automatic input scale from the events when a recording has no calibration (evstereo.recordings.shift).

The real stereo DVS128 pendulum in ../shared/data has no calibration. Its events put the bob at
18-38 px of disparity as it swings (the two cameras' event images correlate best there, and
SGBM agrees: README); the sensor-size rule alone scaled it x2.25, past the 36 px the network
resolves, and the shipped network answered about 4 px everywhere. The events now cap that factor.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DVS128_NPZ, ROOT
from evstereo.geometry import auto_scale, auto_scale_and_rule
from evstereo.recordings import open_recording
from evstereo.recordings.real_pair import write_pair
from evstereo.recordings.shift import best_shift, shift_scores, window_shift
from evstereo.recordings.summary import format_summary


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    """The real stereo pendulum converted as the README does (no calibration)."""
    from data_tools.convert import main as convert

    out = tmp_path_factory.mktemp("pendulum") / "pendulum_data.hdf5"
    assert convert(["-q", "--format", "npz", str(DVS128_NPZ), "--right-offset", "0", "-4", "--out", str(out)]) == 0
    return out


def test_shift_scores_peak_at_a_known_shift():
    rng = np.random.default_rng(0)
    left = (rng.random((60, 120)) < 0.05).astype(np.float32)
    right = np.roll(left, -7, axis=1)  # every left feature 7 px to the right of its right twin
    best = best_shift(shift_scores(left, right, 30))
    assert best == {"shift_px": 7, "score": pytest.approx(1.0, abs=0.01), "clear": True}
    # unrelated images: no clear peak
    assert not best_shift(shift_scores(left, (rng.random((60, 120)) < 0.05).astype(np.float32), 30))["clear"]
    assert shift_scores(left, right, 30, -2).keys() == set(range(-2, 31))  # one-sided ranges
    with pytest.raises(ValueError, match="no column"):
        shift_scores(left, right, 60)


def test_auto_scale_caps_either_rule_by_the_events():
    rule = auto_scale_and_rule
    # x2.25 would put 26 px at 58 px: capped so that it stays at half the network's range, 18 / 26 -> 0.65
    assert rule(128, 128, disparity=26.0, max_disparity=36) == (pytest.approx(0.65), "events")
    assert rule(128, 128, fB=19.9418 / 2.25, disparity=26.0, max_disparity=36) == (pytest.approx(0.65), "events")
    assert rule(128, 128, fB=19.9418 / 2.25, disparity=8.0, max_disparity=36) == (2.25, "calibration")
    assert rule(128, 128, disparity=8.0, max_disparity=36) == (2.25, "sensor size")  # 18 px: within
    assert rule(128, 128, disparity=26.0) == rule(128, 128, disparity=None, max_disparity=36) == (2.25, "sensor size")
    assert rule(128, 128, disparity=float("nan"), max_disparity=36) == (2.25, "sensor size")
    assert auto_scale(128, 128, disparity=500.0, max_disparity=36) == 0.25  # within SCALE_RANGE


def test_auto_scale_raises_a_scene_of_small_disparities():
    rule = auto_scale_and_rule
    # the MVSEC rig's factor 1 would leave 3 px under a quarter of the range (9 px): raised
    # towards 9 / 3, but no further than twice the nominal pixels: sqrt(2) for the DAVIS346 itself
    assert rule(260, 346, fB=19.9418, disparity=3.0, max_disparity=36) == (pytest.approx(1.4), "events")
    assert rule(180, 240, fB=19.9418, disparity=1.0, max_disparity=36) == (pytest.approx(2.0), "events")
    assert rule(128, 128, disparity=3.5, max_disparity=36) == (pytest.approx(2.55), "events")  # 9 / 3.5 -> 2.57
    # at or above a quarter, or without a typical disparity: the rule's factor
    assert rule(260, 346, fB=19.9418, disparity=9.0, max_disparity=36) == (1.0, "calibration")
    assert rule(180, 240, fB=19.9418, disparity=None, max_disparity=36) == (1.0, "calibration")
    # a raise never lowers the rule's factor (rounded down onto the grid, it could)
    assert rule(128, 128, disparity=3.99, max_disparity=36) == (2.25, "sensor size")


def test_typical_disparity_of_real_events_with_a_known_disparity(pendulum, tmp_path):
    info = write_pair(pendulum, tmp_path, "pair", field="constant", d_min=12, d_max=12, seed=1)
    with open_recording(info["data"]) as rec:
        assert rec.typical_disparity() == pytest.approx(12, abs=1)
    with open_recording(pendulum) as rec:
        assert rec.fB is None and 18 <= rec.typical_disparity() <= 38  # the bob's range
        text = format_summary(rec.summary())  # data_tools.inspect shows it
    assert f"disparity     typical {rec.typical_disparity():g} px" in text


def _reference_shift(rec, t_us: int) -> int | None:
    """The bob's disparity at ``t_us`` from the two cameras' event images over 300 ms."""
    best = window_shift(rec, t_us, 300_000, 48, -8)
    return best["shift_px"] if best is not None and best["clear"] else None


def _distance_from_reference(rec, scale) -> tuple[float, object]:
    from evstereo.inference.engine import EngineConfig, StreamingEngine
    from evstereo.models import load_checkpoint

    net = load_checkpoint(ROOT / "evstereo" / "checkpoints" / "fast.pt").eval()
    engine = StreamingEngine(rec, net, EngineConfig(max_speed=True, stride_us=250_000, start_us=300_000,
                                                    max_frames=24, scale=scale))
    errors = []
    for frame in engine.frames():
        ref = _reference_shift(rec, frame.t_us)
        at_events = np.zeros(frame.disparity.shape, bool)
        at_events[frame.left.y.astype(int), frame.left.x.astype(int)] = True
        predicted = frame.disparity[at_events & np.isfinite(frame.disparity)]
        if ref is not None and len(predicted):
            errors.append(abs(float(np.median(predicted)) - ref))
    assert len(errors) >= 12
    return float(np.median(errors)), engine.predictor


def test_the_network_follows_the_real_pendulum_at_the_scale_its_events_give(pendulum):
    with open_recording(pendulum) as rec:
        error, predictor = _distance_from_reference(rec, "auto")
        expected = auto_scale(128, 128, disparity=rec.typical_disparity(), max_disparity=36)
        assert predictor.rule == "events" and predictor.rule_scale == expected
        assert predictor.scale == predictor.rule_scale < 1  # shrunk (no fit: the events chose it), not x2.25
        assert error < 5.0, error
        old_error, _ = _distance_from_reference(rec, 2.25)  # the sensor-size rule's factor
        assert old_error > 12.0, old_error


def test_evaluate_reports_a_factor_the_events_bound(pendulum, tmp_path, capsys):
    from apps.evaluate import main as evaluate

    # a real pair whose plane (4-16 px, typical about 12) x2.25 would pass half the network's 36 px
    info = write_pair(pendulum, tmp_path, "plane", field="plane", d_min=4, d_max=16, seed=2)
    out = tmp_path / "results.json"
    assert evaluate(["--data", str(info["data"]), "--out", str(out), "--max-frames", "3", "--energy-frames", "0"]) == 0
    rec = next(iter(json.loads(out.read_text())["recordings"].values()))
    assert rec["scale_rule"] == "events" and rec["rule_scale"] == rec["scale"] < 2.25
    assert rec["scale"] == auto_scale(128, 128, disparity=rec["typical_disparity"], max_disparity=36)
    assert f"bound by the events' typical disparity of {rec['typical_disparity']:g} px" in capsys.readouterr().out
