"""MVSEC reader: windows, rectification, GT pairing, index cache, and bad input."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import REAL_CALIB
from evstereo.errors import InputError
from evstereo.events.arrays import seconds_to_us
from evstereo.geometry import depth_to_disparity, load_calibration
from evstereo.recordings import open_recording
from evstereo.recordings.mvsec import MVSECRecording
from evstereo.recordings.mvsec_writer import MVSECWriter


def _all_events(path, cam):
    with h5py.File(path, "r") as f:
        ev = f[f"davis/{cam}/events"][:]
    return ev, seconds_to_us(ev[:, 2])


def test_windows_match_brute_force_and_are_rectified(random_recording):
    cal = load_calibration(REAL_CALIB)
    with open_recording(random_recording) as rec:
        assert isinstance(rec, MVSECRecording)
        assert rec.sensor_size == (260, 346) and rec.fB == pytest.approx(19.941771812941038)
        for cam in ("left", "right"):
            ev, t = _all_events(random_recording, cam)
            lut = cal.camera(cam).rectify_lut()
            t_start = rec.time_range(cam)[0]
            for a, b in [(0, 50_000), (123_456, 173_456), (1_000_000, 1_300_000), (-10_000, 0), (5_000_000, 5_100_000)]:
                t0, t1 = t_start + a, t_start + b
                sel = (t > t0) & (t <= t1)
                raw = rec.raw_events(cam, t0, t1)
                assert len(raw) == sel.sum()
                np.testing.assert_array_equal(raw.t, t[sel])
                np.testing.assert_array_equal(raw.x, ev[sel, 0].astype(np.int16))
                np.testing.assert_array_equal(raw.p, ev[sel, 3].astype(np.int8))
                # rectified by the calibration's table, rounded, out-of-image dropped
                xr = np.floor(lut[raw.y, raw.x, 0] + 0.5)
                yr = np.floor(lut[raw.y, raw.x, 1] + 0.5)
                inside = (xr >= 0) & (yr >= 0) & (xr < 346) & (yr < 260)
                out = rec.events(cam, t0, t1)
                np.testing.assert_array_equal(out.x, xr[inside].astype(np.int16))
                np.testing.assert_array_equal(out.y, yr[inside].astype(np.int16))
                np.testing.assert_array_equal(out.t, raw.t[inside])
            # the equidistant model moves events: some pixels change, some leave the image
            full = rec.raw_events(cam, t_start - 1, t_start + 2_000_000)
            rect = rec.events(cam, t_start - 1, t_start + 2_000_000)
            assert 0 < len(rect) < len(full)


def test_ground_truth_paired_by_timestamp(random_recording):
    with open_recording(random_recording) as rec:
        ts = rec.gt_timestamps()
        assert len(ts) == 23 and np.all(np.diff(ts) == 50_000)
        assert rec.gt_index_at(int(ts[5]) + 20_000) == 5
        assert rec.gt_index_at(int(ts[5]) + 30_000) == 6
        d = rec.depth(3)
        assert d.dtype == np.float32 and d.shape == (260, 346)
        np.testing.assert_allclose(rec.disparity(3), depth_to_disparity(d, rec.fB))


def test_index_cache_written_reused_and_refreshed(tmp_path, random_recording):
    data = tmp_path / "rand_data.hdf5"
    shutil.copy(random_recording, data)
    shutil.copytree(random_recording.parent / "rand_calib", tmp_path / "rand_calib")
    cache = tmp_path / "rand_data.hdf5.tindex.npz"
    MVSECRecording(data).close()
    assert cache.exists()
    mtime = cache.stat().st_mtime_ns
    MVSECRecording(data).close()
    assert cache.stat().st_mtime_ns == mtime  # reused
    with h5py.File(data, "a") as f:  # the data changes -> the index is rebuilt
        f["davis/left/events"].resize(1000, axis=0)
    os.utime(data, ns=(mtime + 10**9, mtime + 10**9))
    with MVSECRecording(data) as rec:
        assert rec.num_events("left") == 1000
        t0, t1 = rec.time_range("left")
        assert len(rec.raw_events("left", t0 - 1, t1)) == 1000


def test_unwritable_cache_keeps_index_in_memory(tmp_path, random_recording):
    """A cache that cannot be written (read-only data folder, here a folder in its way) is not fatal."""
    data = tmp_path / "rand_data.hdf5"
    shutil.copy(random_recording, data)
    blocker = tmp_path / "rand_data.hdf5.tindex.npz"
    blocker.mkdir()
    with MVSECRecording(data) as rec:
        t0, t1 = rec.time_range("left")
        assert len(rec.raw_events("left", t0 - 1, t1)) == rec.num_events("left") > 0
    assert blocker.is_dir() and not any(tmp_path.glob(".rand_data*"))


def test_empty_window_gives_no_events(random_recording):
    with open_recording(random_recording) as rec:
        t0 = rec.time_range("left")[0]
        assert len(rec.events("left", t0 + 100, t0 + 100)) == 0


# --- bad input ---------------------------------------------------------------------------

def _write(path, cam_events=None, depth=None, size=(260, 346)):
    rng = np.random.default_rng(0)
    gt = path.with_name(path.name.replace("_data", "_gt")) if depth is not None else None
    with MVSECWriter(path, gt, height=size[0], width=size[1]) as w:
        for cam in ("left", "right"):
            if cam_events is None:
                n = 1000
                w.add_events(cam, rng.integers(0, size[1], n), rng.integers(0, size[0], n),
                             1.5e9 + np.sort(rng.uniform(0, 1, n)), rng.choice([-1, 1], n))
            else:
                w.add_events(cam, *cam_events)
        if depth is not None:
            w.add_depth("left", "rect", depth, 1.5e9 + 0.05 * np.arange(len(depth)))
    return path


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope_data.hdf5.*does not exist"):
        open_recording(tmp_path / "nope_data.hdf5")


def test_missing_dataset(tmp_path):
    p = tmp_path / "x_data.hdf5"
    with h5py.File(p, "w") as f:
        f.create_dataset("davis/left/events", data=np.zeros((3, 4)))
    with pytest.raises(InputError, match=r"x_data.hdf5.*davis/right/events"):
        MVSECRecording(p)


def test_wrong_shape_and_dtype(tmp_path):
    p = tmp_path / "s_data.hdf5"
    with h5py.File(p, "w") as f:
        f.create_dataset("davis/left/events", data=np.zeros((3, 3)))
        f.create_dataset("davis/right/events", data=np.zeros((3, 4)))
    with pytest.raises(InputError, match=r"s_data.hdf5.*shape \(3, 3\)"):
        MVSECRecording(p)
    with h5py.File(p, "w") as f:
        f.create_dataset("davis/left/events", data=np.zeros((3, 4), np.int32))
        f.create_dataset("davis/right/events", data=np.zeros((3, 4)))
    with pytest.raises(InputError, match="dtype int32"):
        MVSECRecording(p)


def test_unsorted_timestamps(tmp_path):
    p = _write(tmp_path / "u_data.hdf5")
    with h5py.File(p, "a") as f:
        ev = f["davis/left/events"]
        ev[500, 2] = ev[10, 2]
    with pytest.raises(InputError, match=r"u_data.hdf5.*not sorted.*event 500"):
        MVSECRecording(p, cache_index=False)


def test_events_outside_sensor(tmp_path):
    p = _write(tmp_path / "o_data.hdf5")
    with h5py.File(p, "a") as f:
        f["davis/right/events"][7, 0] = 400
    with pytest.raises(InputError, match=r"o_data.hdf5.*event 7 .*outside the 346x260 sensor"):
        MVSECRecording(p, cache_index=False)


def test_nan_is_invalid_but_inf_depth_is_an_error(tmp_path):
    depth = np.full((2, 260, 346), 2.0, np.float32)
    depth[0, :10] = np.nan
    depth[1, 5, 5] = np.inf
    p = _write(tmp_path / "d_data.hdf5", depth=depth)
    with MVSECRecording(p, calibration=REAL_CALIB) as rec:
        d0 = rec.disparity(0)
        assert np.isnan(d0[:10]).all() and np.isfinite(d0[10:]).all()
        with pytest.raises(InputError, match=r"d_gt.hdf5.*frame 1 .*infinite"):
            rec.depth(1)


def test_truncated_file(tmp_path):
    p = _write(tmp_path / "t_data.hdf5")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"t_data.hdf5.*truncated or corrupt"):
        MVSECRecording(p)


def test_calibration_resolution_mismatch(tmp_path):
    p = _write(tmp_path / "c_data.hdf5", size=(128, 128))
    with pytest.raises(InputError, match=r"camchain-imucam-indoor_flying.yaml.*346x260 does not match .*128x128"):
        MVSECRecording(p, calibration=REAL_CALIB)


def test_writer_interrupted_leaves_nothing(tmp_path):
    p = _write(tmp_path / "keep_data.hdf5")
    before = p.read_bytes()
    with pytest.raises(RuntimeError):
        with MVSECWriter(p) as w:
            w.add_events("left", [1], [1], [1.5e9], [1])
            raise RuntimeError("interrupted")
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep_data.hdf5"]


def test_written_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = _write(tmp_path / "perm_data.hdf5")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
