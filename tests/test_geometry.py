"""Calibration parsing, rectification, disparity <-> depth, back-projection, time index, splits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import REAL_CALIB
from evstereo.datasets.splits import mvsec_split
from evstereo.errors import InputError
from evstereo.events.time_index import TimeIndex, UnsortedTimestamps
from evstereo.geometry import (
    StereoCalibration,
    backproject,
    depth_to_disparity,
    disparity_to_depth,
    load_calibration,
    load_camchain,
)


def test_real_indoor_flying_calibration():
    cal = load_camchain(REAL_CALIB)
    assert cal.size == (260, 346)
    assert cal.focal == pytest.approx(199.6530123165822)
    assert cal.fB == pytest.approx(19.941771812941038)
    assert cal.baseline == pytest.approx(0.0999, abs=2e-4)
    assert cal.left.distortion_model == "equidistant"
    assert cal.left.K[0, 0] == pytest.approx(226.38018519795807)


def test_event_table_agrees_with_image_remap():
    """Rectifying a pixel forward (events) and warping an image backward (cv2.remap) agree."""
    cam = load_camchain(REAL_CALIB).left
    lut = cam.rectify_lut()
    mx, my = cam.image_rectify_maps()
    # rectified pixel (u, v) samples raw pixel (mx, my); mapping that raw pixel forward lands on (u, v)
    for v, u in [(130, 170), (40, 60), (220, 300), (126, 177)]:
        rx, ry = mx[v, u], my[v, u]
        xr, yr = cam.rectify_points(np.array([rx]), np.array([ry]))
        assert xr[0] == pytest.approx(u, abs=1e-2) and yr[0] == pytest.approx(v, abs=1e-2)
    # and the table is those same points at integer raw pixels
    xr, yr = cam.rectify_points(np.array([100.0]), np.array([50.0]))
    assert lut[50, 100, 0] == pytest.approx(xr[0], abs=1e-3) and lut[50, 100, 1] == pytest.approx(yr[0], abs=1e-3)


def test_pixel_rays_project_back():
    cal = load_camchain(REAL_CALIB)
    cam = cal.right
    rays = cam.pixel_rays(rectified=False)
    pts = rays[::37, ::41].reshape(-1, 3) * 2.5
    proj, _ = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), cam.K, cam.D)
    ys, xs = np.mgrid[0:260:37, 0:346:41]
    np.testing.assert_allclose(proj.reshape(-1, 2), np.stack([xs.ravel(), ys.ravel()], -1), atol=1e-3)
    rect = cam.pixel_rays(rectified=True)
    p = (cam.P[:3, :3] @ (cam.R @ rect[200, 300]))
    assert p[0] / p[2] == pytest.approx(300, abs=1e-6) and p[1] / p[2] == pytest.approx(200, abs=1e-6)


def test_camchain_round_trip_and_maps(tmp_path):
    cal = load_camchain(REAL_CALIB)
    out = tmp_path / "calib" / "camchain-imucam-x.yaml"
    cal.to_camchain_yaml(out)
    back = load_calibration(out.parent)
    np.testing.assert_allclose(back.right.P, cal.right.P)
    np.testing.assert_allclose(back.left.D, cal.left.D)
    np.testing.assert_allclose(back.T_right_left, cal.T_right_left)
    # MVSEC's x/y map text files replace the computed table
    lut = cal.left.rectify_lut()
    np.savetxt(out.parent / "x_left_x_map.txt", lut[..., 0] + 1.0)
    np.savetxt(out.parent / "x_left_y_map.txt", lut[..., 1])
    with_maps = load_calibration(out.parent)
    np.testing.assert_allclose(with_maps.left.rectify_lut()[..., 0], lut[..., 0] + 1.0, atol=1e-4)
    assert with_maps.right.event_map is None


def test_bad_calibration_files(tmp_path):
    with pytest.raises(InputError, match="missing.yaml.*does not exist"):
        load_camchain(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cam0: {intrinsics: [1, 2, 3, 4], resolution: [10, 10]}\n")
    with pytest.raises(InputError, match="bad.yaml.*cam0 and cam1"):
        load_camchain(bad)
    bad.write_text(REAL_CALIB.read_text().replace("[0.0, 199.6530123165822, 126.81215684365904, 0.0]", "[0.0, 1.0]", 1))
    with pytest.raises(InputError, match="bad.yaml.*projection_matrix"):
        load_camchain(bad)
    (tmp_path / "m").mkdir()
    np.savetxt(tmp_path / "m" / "a_left_x_map.txt", np.zeros((3, 3)))
    np.savetxt(tmp_path / "m" / "a_left_y_map.txt", np.zeros((3, 3)))
    (tmp_path / "m" / "camchain-imucam-a.yaml").write_text(REAL_CALIB.read_text())
    with pytest.raises(InputError, match=r"a_left_x_map.txt.*\(3, 3\)"):
        load_calibration(tmp_path / "m")


def test_depth_disparity_and_backprojection():
    fB = 19.941771812941038
    depth = np.array([[1.0, 2.0, np.nan], [0.0, -1.0, 0.5]], np.float32)
    disp = depth_to_disparity(depth, fB)
    np.testing.assert_allclose(disp[0, :2], [fB, fB / 2], rtol=1e-6)
    assert np.isnan(disp[0, 2]) and np.isnan(disp[1, 0]) and np.isnan(disp[1, 1])
    np.testing.assert_allclose(disparity_to_depth(disp, fB)[0, :2], [1.0, 2.0], rtol=1e-6)
    cal = StereoCalibration.identity(4, 6, fB=fB, focal=100.0)
    d = np.full((4, 6), np.nan, np.float32)
    d[1, 2] = 2.0
    pts, mask = backproject(d, cal.left.P)
    assert mask.sum() == 1
    np.testing.assert_allclose(pts[0], [(2 - 2.5) / 100 * 2, (1 - 1.5) / 100 * 2, 2.0], rtol=1e-6)


def test_time_index_slices_and_sorting():
    rng = np.random.default_rng(0)
    t = np.sort(rng.integers(10_000, 900_000, 50_000))
    chunks = [t[i : i + 7000] for i in range(0, len(t), 7000)]
    idx = TimeIndex.build(chunks, len(t))
    for t0, t1 in [(0, 10), (10_000, 60_000), (123_456, 123_999), (850_000, 2_000_000)]:
        lo, hi = idx.coarse_slice(t0, t1)
        sel = np.flatnonzero((t > t0) & (t <= t1))
        if len(sel):
            assert lo <= sel[0] and hi > sel[-1]
        assert hi - lo <= len(sel) + 2 * 200  # at most ~2 ms of extra events at this rate
    bad = t.copy()
    bad[30_000] = 0
    with pytest.raises(UnsortedTimestamps) as exc:
        TimeIndex.build([bad[i : i + 7000] for i in range(0, len(bad), 7000)], len(bad))
    assert exc.value.index == 30_000
    empty = TimeIndex.build([], 0)
    assert empty.coarse_slice(0, 10) == (0, 0)


def test_mvsec_splits():
    s1 = mvsec_split(1)
    assert [n for n, _ in s1["train"]] == ["indoor_flying2", "indoor_flying3"]
    assert s1["train"][0][1][0] == 160 and s1["train"][0][1][-1] == 1579
    assert s1["train"][1][1][0] == 125 and s1["train"][1][1][-1] == 1814
    val, test = s1["val"][0][1], s1["test"][0][1]
    assert len(val) == 200 and len(test) == 1200 - 140 + 1 - 200
    assert sorted(np.concatenate([val, test]).tolist()) == list(range(140, 1201))
    np.testing.assert_array_equal(val, np.random.RandomState(0).permutation(np.arange(140, 1201))[:200])
    s3 = mvsec_split(3)
    assert [n for n, _ in s3["train"]] == ["indoor_flying1", "indoor_flying2"]
    assert s3["train"][0][1][0] == 80 and s3["train"][0][1][-1] == 1259
    assert len(s3["val"][0][1]) + len(s3["test"][0][1]) == 1615 - 73 + 1
    with pytest.raises(ValueError):
        mvsec_split(4)
