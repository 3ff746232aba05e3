"""Streaming engine: schedule, per-frame outputs, real-time pacing with skipping."""

from __future__ import annotations

import time

import numpy as np
import torch

from evstereo.recordings import open_recording
from evstereo.events.input_spec import InputSpec
from evstereo.inference import EngineConfig, StreamingEngine


class EventActivity(torch.nn.Module):
    """Stand-in model: 'disparity' = 10 where the left camera saw events, else 0 (invalid)."""

    def __init__(self, delay_s: float = 0.0, input_spec: InputSpec = InputSpec()):
        super().__init__()
        self.delay_s, self.input_spec = delay_s, input_spec

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        if self.delay_s:
            time.sleep(self.delay_s)
        return (left.abs().sum(dim=(1, 2)) > 0).float() * 10.0


def test_frames_on_gt_timestamps_with_expected_content(random_recording):
    spec = InputSpec("counts", bins=2)  # counts: every pixel with an event is non-zero
    with open_recording(random_recording) as rec:
        eng = StreamingEngine(rec, EventActivity(input_spec=spec), EngineConfig(max_speed=True, sparse=None))
        assert eng.spec.input == spec and eng.config.window_us == spec.window_us  # read from the model
        frames = list(eng.frames())
        ts = rec.gt_timestamps()
        start = rec.time_span()[0]
        expected = ts[ts - 50_000 >= start]
        assert [f.t_us for f in frames] == expected.tolist()
        f = frames[3]
        ev = rec.events("left", f.t_us - 50_000, f.t_us)
        assert len(f.left) == len(ev) and np.array_equal(f.left.t, ev.t)
        seen = np.zeros((260, 346), bool)
        seen[ev.y, ev.x] = True
        np.testing.assert_array_equal(np.isfinite(f.disparity), seen)
        np.testing.assert_allclose(f.depth[seen], rec.fB / 10.0, rtol=1e-6)
        assert f.gt_disparity is not None and f.gt_disparity.shape == (260, 346)
        assert set(f.timings_ms) == {"read", "represent", "model", "post"}
        s = eng.stats.summary()
        assert s["frames_produced"] == len(frames) and s["frames_skipped"] == 0


def test_sparse_events_get_a_longer_window(random_recording):
    # about 0.09 events per pixel in 50 ms: under the default 0.1, so the windows double
    with open_recording(random_recording) as rec:
        eng = StreamingEngine(rec, EventActivity(input_spec=InputSpec("counts", bins=2)), EngineConfig(max_speed=True))
        frames = list(eng.frames())
        f = frames[3]
        assert f.window_us == 100_000
        for cam, got in (("left", f.left), ("right", f.right)):
            ev = rec.events(cam, f.t_us - 100_000, f.t_us)
            assert len(ev) >= 0.1 * 260 * 346 > len(rec.events(cam, f.t_us - 50_000, f.t_us))
            np.testing.assert_array_equal(got.t, ev.t)
        # the first window cannot reach before the recording's first event
        start = rec.time_span()[0]
        assert frames[0].t_us - frames[0].window_us < start and frames[0].window_us == 100_000
        w = eng.stats.summary()["windows_ms"]  # the same summary as evaluate's results.json
        assert w["p50"] == w["mean"] == 100.0 and w["network"] == 50.0 and w["extended_share"] == 1.0


def test_regular_grid_and_limits(random_recording):
    with open_recording(random_recording) as rec:
        start = rec.time_span()[0]
        cfg = EngineConfig(stride_us=20_000, max_speed=True, max_frames=7)
        frames = list(StreamingEngine(rec, EventActivity(), cfg).frames())
        assert [f.t_us for f in frames] == [start + 50_000 + 20_000 * i for i in range(7)]


def test_real_time_pacing_skips_when_the_model_is_slow(random_recording):
    with open_recording(random_recording) as rec:
        # windows 200 ms apart: room enough for a fast model to keep pace on a busy shared machine
        # scale 1: the automatic scale's fit (several predictions per window at first) is not timed here
        fast = StreamingEngine(rec, EventActivity(), EngineConfig(stride_us=200_000, max_frames=6, scale=1.0))
        t = time.perf_counter()
        n_fast = len(list(fast.frames()))
        took = time.perf_counter() - t
        assert n_fast == 6 and fast.stats.skipped == 0
        assert took >= 0.95  # paced: 6 windows 200 ms apart take about 1 s of wall time

        slow = StreamingEngine(rec, EventActivity(delay_s=0.13), EngineConfig(stride_us=50_000, max_frames=20,
                                                                              scale=1.0))
        frames = list(slow.frames())
        assert slow.stats.skipped > 0
        assert len(frames) + slow.stats.skipped == 20  # every window is either produced or counted
        assert sum(f.skipped for f in frames) == slow.stats.skipped
        # ~2 windows pass during each 130 ms frame (the last step may be 1: the schedule ends)
        assert np.all(np.diff([f.index for f in frames])[:-1] >= 2)


def test_the_untimed_warm_up_window_does_not_count_for_the_scale_fit(random_recording):
    from evstereo.inference.prediction import Predictor

    with open_recording(random_recording) as rec:
        eng = StreamingEngine(rec, EventActivity(input_spec=InputSpec("counts", bins=2)),
                              EngineConfig(max_speed=True, sparse=None))
        scale, left, errors = eng.predictor.fit_state()
        assert left == Predictor.FIT_FRAMES  # the rule's factor is checked on the first windows
        eng.warm_up()
        assert eng.predictor.fit_state()[1] == left and not eng.predictor.fit_state()[2].any()
        next(iter(eng.frames()))  # the first real window is the fit's first
        assert eng.predictor.fit_state()[1] == left - 1
