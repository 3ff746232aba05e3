"""The synthetic MVSEC recording generator: layout, rates, geometry, determinism, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from evstereo.recordings.mvsec_writer import calibration_file, companion_paths
from evstereo.events.rectify import rectify_events
from evstereo.geometry import CAMERAS, load_calibration, load_camchain
from evstereo.simulation import DEFAULT_CALIBRATION, synthesize

ROOT = Path(__file__).resolve().parents[1]
REAL_CALIB = ROOT.parent / "shared" / "data" / "mvsec" / "camchain-imucam-indoor_flying.yaml"
H, W = 260, 346
SECONDS = 0.6
FB_INDOOR_FLYING = 19.941771812941038


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> dict:
    """One 0.6 s recording shared by the tests of this module."""
    return synthesize(tmp_path_factory.mktemp("synth"), "room", SECONDS, seed=3)


@pytest.fixture(scope="module")
def data(rec):
    with h5py.File(rec["data"], "r") as f:
        yield f


@pytest.fixture(scope="module")
def gt(rec):
    with h5py.File(rec["gt"], "r") as f:
        yield f


def test_files_and_names(rec):
    data_path = Path(rec["data"])
    name, gt_path, calib_dir = companion_paths(data_path)
    assert name == "room" and data_path.name == "room_data.hdf5"
    assert gt_path == Path(rec["gt"]) and gt_path.is_file()
    assert calibration_file(calib_dir, name) == Path(rec["calibration"]) and Path(rec["calibration"]).is_file()
    leftovers = [p.name for p in data_path.parent.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_data_layout(data):
    for cam in CAMERAS:
        g = data[f"davis/{cam}"]
        ev = g["events"]
        assert ev.ndim == 2 and ev.shape[1] == 4 and ev.dtype == np.float64
        ev = ev[:]
        x, y, t, p = ev.T
        assert np.all(np.diff(t) >= 0), "events must be sorted by time"
        assert 1.4e9 < t[0] < 1.6e9, "timestamps are absolute seconds, like MVSEC"
        assert t[-1] - t[0] <= SECONDS + 1e-6 and t[-1] - t[0] > 0.9 * SECONDS
        assert set(np.unique(p)) == {-1.0, 1.0}
        assert np.all(x == np.round(x)) and np.all(y == np.round(y))
        assert x.min() >= 0 and x.max() <= W - 1 and y.min() >= 0 and y.max() <= H - 1
        img, img_ts, inds = g["image_raw"], g["image_raw_ts"][:], g["image_raw_event_inds"][:]
        assert img.dtype == np.uint8 and img.shape[1:] == (H, W) and img.shape[0] == len(img_ts) == len(inds)
        assert img_ts.dtype == np.float64 and inds.dtype == np.int64
        assert 20 <= 1 / np.median(np.diff(img_ts)) <= 31
        assert img[0].std() > 10, "APS frames show the textured scene"
        assert np.all(np.diff(inds) >= 0) and inds[-1] < len(t)
        imu, imu_ts = g["imu"][:], g["imu_ts"][:]
        assert imu.shape == (len(imu_ts), 6) and imu.dtype == np.float64
        assert 200 <= 1 / np.median(np.diff(imu_ts)) <= 1000 + 1
        # The accelerometer reads about 1 g (slow flight), the gyro rates of a smooth path.
        assert 8.5 < np.median(np.linalg.norm(imu[:, :3], axis=1)) < 11.0
        assert np.abs(imu[:, 3:]).max() < 3.0
    assert data.attrs["sensor_height"] == H and data.attrs["sensor_width"] == W


def test_gt_layout(gt, data):
    t0 = min(data[f"davis/{c}/events"][0, 2] for c in CAMERAS)
    for cam in CAMERAS:
        for kind in ("raw", "rect"):
            depth = gt[f"davis/{cam}/depth_image_{kind}"]
            ts = gt[f"davis/{cam}/depth_image_{kind}_ts"][:]
            assert depth.dtype == np.float32 and depth.shape == (len(ts), H, W)
            assert ts.dtype == np.float64
            np.testing.assert_allclose(np.diff(ts), 0.05, atol=1e-5)  # 20 Hz
            assert len(ts) == int(round(SECONDS * 20))
            assert ts[0] > t0, "every depth frame has events before it"
            d = depth[:]
            finite = d[np.isfinite(d)]
            assert finite.size > 0.8 * d.size and finite.min() > 0.3 and finite.max() < 10.0
    for name in ("pose", "odometry"):
        poses, ts = gt[f"davis/left/{name}"][:], gt[f"davis/left/{name}_ts"][:]
        assert poses.shape == (len(ts), 4, 4) and poses.dtype == np.float64 and np.all(np.diff(ts) > 0)
        R = poses[:, :3, :3]
        np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
        np.testing.assert_allclose(poses[:, 3], np.broadcast_to([0, 0, 0, 1.0], (len(ts), 4)))
    np.testing.assert_array_equal(gt["davis/left/odometry_ts"][:], gt["davis/left/depth_image_rect_ts"][:])


def test_calibration_is_the_real_rig(rec):
    calib = load_calibration(Path(rec["calibration"]).parent)
    assert calib.fB == pytest.approx(19.9418, abs=1e-4)
    assert calib.left.distortion_model == "equidistant"
    ref = load_camchain(REAL_CALIB if REAL_CALIB.is_file() else DEFAULT_CALIBRATION)
    assert ref.fB == pytest.approx(FB_INDOOR_FLYING, abs=1e-9)
    for cam in CAMERAS:
        a, b = calib.camera(cam), ref.camera(cam)
        for field in ("K", "D", "R", "P"):
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=0, atol=1e-9)
    np.testing.assert_allclose(calib.T_right_left, ref.T_right_left, atol=1e-12)
    assert DEFAULT_CALIBRATION.read_text().startswith("#") and "CC BY-SA 4.0" in DEFAULT_CALIBRATION.read_text()


def test_event_rate(rec):
    for cam in CAMERAS:
        rate = rec["events"][cam] / SECONDS
        assert 0.3e6 <= rate <= 5e6, f"{cam}: {rate / 1e6:.2f} Mev/s"


def test_disparity_range(gt):
    disp = FB_INDOOR_FLYING / gt["davis/left/depth_image_rect"][:]
    d = disp[np.isfinite(disp)]
    assert np.mean((d >= 2) & (d <= 36)) > 0.95
    assert np.percentile(d, 95) - np.percentile(d, 5) > 5, "a spread of depths, not one wall"


def test_depth_maps_agree_through_the_calibration(gt, rec):
    """Raw depth, rectified depth and the right camera's depth describe one scene."""
    calib = load_calibration(Path(rec["calibration"]).parent)
    k = 4
    left = calib.left
    raw = gt["davis/left/depth_image_raw"][k].astype(np.float64)
    rect = gt["davis/left/depth_image_rect"][k].astype(np.float64)
    right_raw = gt["davis/right/depth_image_raw"][k].astype(np.float64)
    ys, xs = np.mgrid[4:H:6, 4:W:6]
    ys, xs = ys.ravel(), xs.ravel()
    pts = left.pixel_rays(rectified=False)[ys, xs] * raw[ys, xs, None]  # raw left camera frame
    ok = np.isfinite(pts[:, 2])
    # Into the rectified left frame: Z must match depth_image_rect at the projected pixel.
    pr = pts[ok] @ left.R.T
    u = np.round(left.P[0, 0] * pr[:, 0] / pr[:, 2] + left.P[0, 2]).astype(int)
    v = np.round(left.P[1, 1] * pr[:, 1] / pr[:, 2] + left.P[1, 2]).astype(int)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    z_rect = rect[v[inside], u[inside]]
    good = np.isfinite(z_rect)
    rel = np.abs(z_rect[good] - pr[inside][good, 2]) / pr[inside][good, 2]
    assert good.sum() > 1000 and np.median(rel) < 0.01
    # Into the right camera: Z must match its raw depth (occlusions aside).
    T = calib.T_right_left
    q = pts[ok] @ T[:3, :3].T + T[:3, 3]
    pix, _ = cv2.fisheye.projectPoints(q.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), calib.right.K, calib.right.D)
    pix = np.round(pix.reshape(-1, 2)).astype(int)
    inside = (pix[:, 0] >= 0) & (pix[:, 0] < W) & (pix[:, 1] >= 0) & (pix[:, 1] < H)
    z_r = right_raw[pix[inside, 1], pix[inside, 0]]
    rel = np.abs(z_r - q[inside, 2]) / q[inside, 2]
    assert np.median(rel) < 0.01 and np.mean(rel < 0.05) > 0.9


def _event_image(ev: np.ndarray, t0: float, t1: float, lut: np.ndarray) -> np.ndarray:
    m = (ev[:, 2] > t0) & (ev[:, 2] <= t1)
    e = ev[m]
    r = rectify_events(e[:, 0].astype(np.int16), e[:, 1].astype(np.int16),
                       np.round(e[:, 2] * 1e6).astype(np.int64), e[:, 3], lut, H, W)
    img = np.zeros((H, W), np.float32)
    np.add.at(img, (r.y.astype(np.int64), r.x.astype(np.int64)), 1.0)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_events_and_ground_truth_agree_through_the_real_calibration(data, gt, rec):
    """Rectified right events shifted by the GT disparity line up with the left events,
    far better than with no shift or a wrong one."""
    calib = load_calibration(Path(rec["calibration"]).parent)
    ev = {c: data[f"davis/{c}/events"][:] for c in CAMERAS}
    ts = gt["davis/left/depth_image_rect_ts"][:]
    depth = gt["davis/left/depth_image_rect"][:]
    for k in (2, 6, 10):
        left = _event_image(ev["left"], ts[k] - 0.008, ts[k] + 0.008, calib.left.rectify_lut())
        right = _event_image(ev["right"], ts[k] - 0.008, ts[k] + 0.008, calib.right.rectify_lut())
        disp = calib.fB / depth[k]
        ys, xs = np.nonzero(np.isfinite(disp))
        scores = {}
        for label, d in (("gt", disp[ys, xs]), ("zero", np.zeros(len(xs))), ("gt+4", disp[ys, xs] + 4),
                         ("gt-4", disp[ys, xs] - 4), ("x1.5", 1.5 * disp[ys, xs]), ("x0.5", 0.5 * disp[ys, xs])):
            xr = xs - d
            ok = (xr >= 0) & (xr <= W - 1)
            x0 = np.floor(xr[ok]).astype(np.int64)
            f = xr[ok] - x0
            x1 = np.minimum(x0 + 1, W - 1)
            shifted = right[ys[ok], x0] * (1 - f) + right[ys[ok], x1] * f
            scores[label] = _ncc(left[ys[ok], xs[ok]], shifted)
        best_wrong = max(v for key, v in scores.items() if key != "gt")
        assert scores["gt"] > 0.5, scores
        assert scores["gt"] > best_wrong + 0.1, scores


def test_same_seed_same_recording_different_seed_different(tmp_path):
    runs = {}
    for folder, seed in (("a", 11), ("b", 11), ("c", 12)):
        info = synthesize(tmp_path / folder, "s", 0.15, seed)
        with h5py.File(info["data"], "r") as f, h5py.File(info["gt"], "r") as g:
            runs[folder] = ({c: f[f"davis/{c}/events"][:] for c in CAMERAS}, g["davis/left/depth_image_rect"][:])
    for c in CAMERAS:
        np.testing.assert_array_equal(runs["a"][0][c], runs["b"][0][c])
        other = runs["c"][0][c]
        assert other.shape != runs["a"][0][c].shape or not np.array_equal(other, runs["a"][0][c])
    np.testing.assert_array_equal(runs["a"][1], runs["b"][1])
    assert not np.allclose(np.nan_to_num(runs["a"][1]), np.nan_to_num(runs["c"][1]))


def test_interrupted_run_leaves_nothing(tmp_path):
    def stop(_seconds):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path, "cut", 0.2, 1, progress=stop)
    assert list(tmp_path.rglob("*")) == []


def test_bad_arguments():
    with pytest.raises(ValueError):
        synthesize("/nonexistent-never-written", "x", 0.0, 1)
    with pytest.raises(TypeError):
        synthesize("/nonexistent-never-written", "x", 1.0, 1, sped=2.0)


def test_command_line(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "data_tools.synth", "--out", str(out), "--name", "tiny", "--seconds", "0.1",
           "--seed", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "tiny_data.hdf5").is_file() and (out / "tiny_gt.hdf5").is_file()
    assert (out / "tiny_calib" / "camchain-imucam-tiny.yaml").is_file()
    with h5py.File(out / "tiny_data.hdf5", "r") as f:
        assert f["davis/left/events"].shape[0] > 0
    bad = subprocess.run([*cmd[:-4], "--seconds", "-1", "--seed", "2"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "seconds" in bad.stderr
