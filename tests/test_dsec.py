"""DSECRecording on generated files in the exact DSEC layout (tests/dsec_fixtures.py)."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import yaml

import evstereo.recordings.dsec as dsec_mod
from dsec_fixtures import brute_force_window, write_dsec_sequence, write_events_h5
from evstereo.errors import InputError
from evstereo.recordings.dsec import DSECRecording


@pytest.fixture(scope="module")
def seq(tmp_path_factory):
    return write_dsec_sequence(tmp_path_factory.mktemp("dsec"))


@pytest.fixture
def seq_copy(seq, tmp_path):
    """A private copy of the sequence that a test may damage."""
    dst = tmp_path / seq["path"].name
    shutil.copytree(seq["path"], dst)
    return dict(seq, path=dst)


def _windows(off: int, duration: int):
    return [
        (off - 5, off + 1000),  # starts before the first event, ends on a ms edge
        (off + 999, off + 2000),  # ms edges on both sides
        (off + 1000, off + 51_000),  # a 50 ms window
        (off + 123_456, off + 173_456),
        (off + 7, off + 8),  # tiny
        (off - 10**9, off + 10**9),  # everything
        (off + duration - 1000, off + duration + 10**6),  # past the end
        (off + duration + 10, off + duration + 20),  # entirely after the end
        (off - 10**6, off - 10),  # entirely before the start
        (off + 5000, off + 4000),  # reversed: empty
    ]


@pytest.mark.parametrize("camera", ["left", "right"])
def test_windows_match_brute_force(seq, camera):
    off = seq["t_offset"]
    with DSECRecording(seq["path"]) as rec:
        for t0, t1 in _windows(off, seq["duration_us"]):
            e = rec.events(camera, t0, t1)
            x, y, t, p = brute_force_window(seq["events"][camera], seq["luts"][camera], off, t0, t1)
            assert np.array_equal(e.t, t), (t0, t1)
            assert np.array_equal(e.x, x) and np.array_equal(e.y, y) and np.array_equal(e.p, p), (t0, t1)
            assert e.x.dtype == np.int16 and e.t.dtype == np.int64 and e.p.dtype == np.int8


def test_every_event_lands_in_exactly_one_window(seq):
    off = seq["t_offset"]
    with DSECRecording(seq["path"], rectify=False) as rec:
        edges = np.arange(off - 1000, off + seq["duration_us"] + 2000, 997)
        total = sum(len(rec.events("left", a, b)) for a, b in zip(edges[:-1], edges[1:]))
        assert total == rec.num_events("left") == len(seq["events"]["left"]["t"])


def test_rectification_is_applied(seq):
    off = seq["t_offset"]
    t0, t1 = off - 1, off + seq["duration_us"]
    ev = seq["events"]["left"]
    lut = seq["luts"]["left"]
    with DSECRecording(seq["path"]) as rect, DSECRecording(seq["path"], rectify=False) as raw:
        r = raw.events("left", t0, t1)
        e = rect.events("left", t0, t1)
    assert np.array_equal(r.x, ev["x"]) and np.array_equal(r.y, ev["y"])  # raw: untouched
    assert 0 < len(e) < len(r)  # some events map outside the rectified image
    assert e.x.min() >= 0 and e.y.min() >= 0 and e.x.max() < 640 and e.y.max() < 480
    # the kept events carry the map's rounded coordinates, not the raw ones
    xr = np.floor(lut[ev["y"], ev["x"], 0] + 0.5)
    yr = np.floor(lut[ev["y"], ev["x"], 1] + 0.5)
    inside = (xr >= 0) & (yr >= 0) & (xr < 640) & (yr < 480)
    assert np.array_equal(e.x, xr[inside]) and np.array_equal(e.y, yr[inside])
    assert np.mean(e.x != ev["x"][inside]) > 0.5


def test_window_reads_only_a_slice(seq, monkeypatch):
    """Windows are found through ms_to_idx: no read covers the whole file."""
    sizes = []
    real_read = dsec_mod._read

    def spy(path, ds, sel=()):
        out = real_read(path, ds, sel)
        if ds.name.startswith("/events/"):
            sizes.append(np.size(out))
        return out

    monkeypatch.setattr(dsec_mod, "_read", spy)
    off = seq["t_offset"]
    with DSECRecording(seq["path"]) as rec:
        sizes.clear()
        e = rec.events("left", off + 100_000, off + 110_000)
        n = rec.num_events("left")
    assert len(e) > 0
    assert max(sizes) < n / 10


def test_times_counts_and_ranges(seq):
    off = seq["t_offset"]
    with DSECRecording(seq["path"]) as rec:
        for cam in ("left", "right"):
            t = seq["events"][cam]["t"]
            assert rec.num_events(cam) == len(t)
            assert rec.time_range(cam) == (int(t[0]) + off, int(t[-1]) + off)
        assert rec.sensor_size == (480, 640)
        assert rec.name == seq["path"].name
        s = rec.summary()
        assert s["gt_frames"] == len(seq["gt_timestamps"])


def test_disparity_depth_and_masks(seq):
    with DSECRecording(seq["path"]) as rec:
        assert np.array_equal(rec.gt_timestamps(), seq["gt_timestamps"])
        assert rec.has_gt
        for i, expected in enumerate(seq["disparities"]):
            d = rec.disparity(i)
            assert d.dtype == np.float32 and d.shape == (480, 640)
            assert np.array_equal(np.isnan(d), np.isnan(expected))
            assert np.allclose(d, expected, equal_nan=True)
            z = rec.depth(i)
            assert z.dtype == np.float32
            assert np.array_equal(np.isnan(z), np.isnan(expected))
            assert np.allclose(z, seq["fB"] / expected, rtol=1e-5, equal_nan=True)
        ts = seq["gt_timestamps"]
        assert rec.gt_index_at(int(ts[2]) + 3) == 2


def test_calibration_from_q(seq):
    with DSECRecording(seq["path"]) as rec:
        cal = rec.calibration
        assert cal.focal == pytest.approx(seq["focal"])
        assert cal.fB == pytest.approx(seq["fB"])
        assert cal.baseline == pytest.approx(seq["baseline"])
        assert cal.left.P[0, 2] == pytest.approx(seq["cx"]) and cal.left.P[1, 2] == pytest.approx(seq["cy"])
        assert cal.left.distortion_model == "none"
        assert rec.fB == pytest.approx(seq["fB"])


def test_sequence_without_gt(tmp_path):
    info = write_dsec_sequence(tmp_path, gt=False, n_events=(300, 200))
    with DSECRecording(info["path"]) as rec:
        assert not rec.has_gt and len(rec.gt_timestamps()) == 0
        assert len(rec.events("right", 0, 2**62)) > 0


# --- bad input ------------------------------------------------------------------------
def _expect(path_part: str, match: str, fn, *args):
    with pytest.raises(InputError, match=match) as info:
        fn(*args)
    assert path_part in str(info.value)
    assert "\n" not in str(info.value)
    return info.value


def test_missing_events_file(seq_copy):
    f = seq_copy["path"] / "events" / "right" / "events.h5"
    f.unlink()
    _expect(str(f), "does not exist", DSECRecording, seq_copy["path"])


@pytest.mark.parametrize("skip,match", [(("p",), "events/p"), (("ms_to_idx",), "ms_to_idx")])
def test_missing_dataset(seq_copy, skip, match):
    ev = seq_copy["events"]["left"]
    f = seq_copy["path"] / "events" / "left" / "events.h5"
    write_events_h5(f, ev["x"], ev["y"], ev["t"], ev["p"], skip=skip)
    _expect(str(f), match, DSECRecording, seq_copy["path"])


def test_unsorted_timestamps_caught_cheaply(seq_copy):
    ev = seq_copy["events"]["left"]
    f = seq_copy["path"] / "events" / "left" / "events.h5"
    t = ev["t"].copy()
    good_index = np.searchsorted(t, np.arange(int(t[-1]) // 1000 + 1) * 1000).astype(np.uint64)
    t[len(t) // 2 :] -= 150_000  # the second half jumps back in time
    write_events_h5(f, ev["x"], ev["y"], t, ev["p"], index=good_index)
    _expect(str(f), "not sorted", DSECRecording, seq_copy["path"])  # found at open, without reading it all


def test_unsorted_timestamps_inside_a_window(seq_copy):
    ev = seq_copy["events"]["left"]
    f = seq_copy["path"] / "events" / "left" / "events.h5"
    t = ev["t"].copy()
    i = len(t) // 2 + 7
    t[i], t[i + 1] = t[i + 1] + 500, t[i] - 500  # a local swap the ms index does not reveal
    good_index = np.searchsorted(ev["t"], np.arange(int(ev["t"][-1]) // 1000 + 1) * 1000).astype(np.uint64)
    write_events_h5(f, ev["x"], ev["y"], t, ev["p"], index=good_index)
    off = seq_copy["t_offset"]

    def read_all():
        with DSECRecording(seq_copy["path"]) as rec:
            rec.events("left", off + int(t[i]) - 3000, off + int(t[i]) + 3000)

    err = _expect(str(f), "not sorted", read_all)
    assert "event" in str(err)


def test_wrong_rectify_map_shape(seq_copy):
    f = seq_copy["path"] / "events" / "left" / "rectify_map.h5"
    with h5py.File(f, "w") as h5:
        h5.create_dataset("rectify_map", data=np.zeros((480, 640), np.float32))
    _expect(str(f), r"shape \(480, 640\), expected \(480, 640, 2\)", DSECRecording, seq_copy["path"])


def test_unreadable_png(seq_copy):
    png = seq_copy["path"] / "disparity" / "event" / "000002.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with DSECRecording(seq_copy["path"]) as rec:
        _expect(str(png), "cannot be read as a PNG", rec.disparity, 1)
        _expect(str(png), "cannot be read as a PNG", rec.depth, 1)


def test_timestamps_and_png_count_differ(seq_copy):
    (seq_copy["path"] / "disparity" / "event" / "000004.png").unlink()
    _expect("timestamps.txt", "4 timestamps but", DSECRecording, seq_copy["path"])


def test_truncated_hdf5(seq_copy):
    f = seq_copy["path"] / "events" / "right" / "events.h5"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])

    def open_and_read():
        with DSECRecording(seq_copy["path"]) as rec:
            rec.events("right", 0, 2**62)

    _expect(str(f), "truncated or corrupt", open_and_read)


def test_calibration_without_q(seq_copy):
    f = seq_copy["path"] / "calibration" / "cam_to_cam.yaml"
    doc = yaml.safe_load(f.read_text())
    del doc["disparity_to_depth"]
    f.write_text(yaml.safe_dump(doc))
    _expect(str(f), "cams_03", DSECRecording, seq_copy["path"])


def test_not_a_folder(tmp_path):
    _expect(str(tmp_path / "nope"), "not a DSEC sequence folder", DSECRecording, tmp_path / "nope")
