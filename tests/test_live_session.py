"""The library's live session (evstereo.live) in-process, as apps.live_depth and the live benchmark run it."""

from __future__ import annotations

import json

import pytest

from evstereo.errors import InputError
from evstereo.live import LiveOptions, build_model, format_summary, run_live


def test_a_headless_session_in_process_reads_its_input_from_the_network(random_recording, tmp_path, monkeypatch):
    monkeypatch.setenv("EVSTEREO_SNN_BACKEND", "eager")  # no kernel compilation in a 2-frame run
    model, name = build_model()  # the shipped network
    notes = []
    result = run_live(random_recording, model, name, LiveOptions(max_speed=True, max_frames=2, ply_every=0),
                      headless=True, out=tmp_path / "out", info=lambda *a, **k: notes.append(a[0]))
    assert result.failure is None and result.report["status"] == "completed"
    r = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert r["frames_produced"] == 2 and r["outputs"]["npy"] == 2
    spec = model.input_spec
    assert r["window_ms"] == spec.window_us / 1000  # the network's window
    assert {k: r["representation"][k] for k in spec.as_dict()} == spec.as_dict()
    assert "gt_max_disparity" in r["representation"]  # the GT rule, named apart from the network's range
    assert any(n.startswith("recording:") for n in notes)
    assert "completed: 2 frames" in format_summary(result.report, result.paths)


def test_the_window_option_overrides_only_the_window(random_recording, tmp_path):
    model, name = build_model(baseline="sgbm")
    result = run_live(random_recording, model, name, LiveOptions(max_speed=True, max_frames=1, window_ms=25,
                                                                 ply_every=0),
                      headless=True, out=tmp_path / "out", info=lambda *a, **k: None)
    assert result.failure is None
    rep = result.report["representation"]
    assert result.report["window_ms"] == 25 and rep["window_us"] == 25_000
    assert rep["representation"] == model.input_spec.representation and rep["bins"] == model.input_spec.bins


def test_a_bad_recording_comes_back_as_the_failure(tmp_path):
    model, name = build_model(baseline="sgbm")
    result = run_live(tmp_path / "missing.hdf5", model, name, LiveOptions(), headless=True, out=tmp_path / "out",
                      info=lambda *a, **k: None)
    assert result.report is None and isinstance(result.failure, InputError)


def test_options_are_checked():
    with pytest.raises(InputError, match="--window-ms"):
        LiveOptions(window_ms=0).check()
    with pytest.raises(InputError, match="--min-depth"):
        LiveOptions(min_depth=5, max_depth=1).check()


def test_pictures_and_clouds_show_the_confident_pixels_unless_show_all(random_recording):
    import numpy as np

    from evstereo.live import LiveSession
    from evstereo.recordings import open_recording

    model, name = build_model(baseline="sgbm")  # its confidence: 1 where it matched, 0 where not
    with open_recording(random_recording) as rec:
        run = LiveSession(LiveOptions(max_speed=True, max_frames=1), rec, model, name, headless=True)
        frame = next(iter(run.engine.frames()))
        keep = frame.confidence >= run.options.min_confidence
        assert 0.05 < keep.mean() < 0.95 and run.share(frame) == keep.mean()
        shown = run.shown(frame)
        assert np.isnan(shown[~keep]).all()
        np.testing.assert_array_equal(shown[keep], frame.disparity[keep])
        image = run.colour(frame)
        assert (image[~keep] == 0).all()  # masked pixels are black
        pts, _ = run.points(frame, image)
        overlay = " ".join(run.overlay(frame))
        assert "scale x1" in overlay and f"confident {100 * keep.mean():3.0f}%" in overlay
        assert "window 100 ms   (sparse events)" in overlay  # about 0.09 events per pixel in 50 ms
        run.options.show_all = True
        everything, _ = run.points(frame, run.colour(frame))
        assert 0 < len(pts) < len(everything)
        assert run.engine.scale == 1.0  # the baseline runs at the sensor's pixels


def test_prediction_options_are_checked():
    for bad, option in ((dict(min_confidence=1.5), "--min-confidence"), (dict(event_radius=-2), "--event-radius"),
                        (dict(scale="big"), "--scale"), (dict(min_event_density=-0.5), "--min-event-density"),
                        (dict(max_window_factor=0), "--max-window-factor")):
        with pytest.raises(InputError, match=option):
            LiveOptions(**bad).check()
    opts = LiveOptions(scale="2")
    opts.check()
    assert opts.scale == 2.0
