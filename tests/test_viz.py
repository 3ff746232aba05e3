"""Colour coding and point clouds (checked against Open3D's own back-projection)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REAL_CALIB
from evstereo.geometry import depth_to_disparity, load_camchain
from evstereo.viz.colors import (LEGEND_WIDTH, colorize_depth, colorize_disparity, depth_legend, disparity_legend,
                                 error_legend, event_image, tensor_event_image, with_legend)
from evstereo.viz.pointcloud import depth_to_points, disparity_to_points, read_ply, write_ply


def _depth():
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 9.0, (260, 346)).astype(np.float32)
    d[rng.random(d.shape) < 0.2] = np.nan
    return d


def test_points_match_open3d_create_from_depth_image():
    o3d = pytest.importorskip("open3d")
    cal = load_camchain(REAL_CALIB)
    P = cal.left.P
    depth = _depth()
    ours, _ = depth_to_points(depth, P, min_depth=0.6, max_depth=8.0)
    img = np.nan_to_num(depth, nan=0.0)
    img[(img < 0.6)] = 0  # Open3D has a far cut (depth_trunc) but no near cut
    intr = o3d.camera.PinholeCameraIntrinsic(346, 260, P[0, 0], P[1, 1], P[0, 2], P[1, 2])
    pcd = o3d.geometry.PointCloud.create_from_depth_image(o3d.geometry.Image(img), intr, depth_scale=1.0, depth_trunc=8.0)
    theirs = np.asarray(pcd.points)
    assert len(ours) == len(theirs) > 50_000
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_disparity_points_equal_depth_points_and_colours():
    cal = load_camchain(REAL_CALIB)
    depth = _depth()
    bgr = np.zeros((260, 346, 3), np.uint8)
    bgr[..., 0] = 200  # blue in BGR
    a, ca = disparity_to_points(depth_to_disparity(depth, cal.fB), cal.left.P, cal.fB, bgr, max_depth=8.0)
    b, _ = depth_to_points(depth, cal.left.P, max_depth=8.0)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert (ca == [0, 0, 200]).all()  # RGB order in the cloud
    assert np.isfinite(a).all() and a[:, 2].max() <= 8.0


def test_ply_round_trip_and_open3d_reads_it(tmp_path):
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(1000, 3)).astype(np.float32)
    cols = rng.integers(0, 256, (1000, 3)).astype(np.uint8)
    path = tmp_path / "cloud.ply"
    write_ply(path, pts, cols)
    p2, c2 = read_ply(path)
    np.testing.assert_array_equal(p2, pts)
    np.testing.assert_array_equal(c2, cols)
    o3d = pytest.importorskip("open3d")
    pcd = o3d.io.read_point_cloud(str(path))
    np.testing.assert_allclose(np.asarray(pcd.points), pts, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pcd.colors), cols / 255.0, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["cloud.ply"]


def test_colour_maps_mark_invalid_and_order_depths():
    depth = np.array([[0.6, 1.0, 4.0, np.nan]], np.float32)
    img = colorize_depth(depth, 0.5, 8.0)
    assert (img[0, 3] == 0).all() and img[0, :3].any(axis=1).all()
    disp = colorize_disparity(np.array([[0.0, 10.0, 60.0]]), 63)
    assert (disp[0, 0] == 0).all() and not np.array_equal(disp[0, 1], disp[0, 2])
    leg = depth_legend(200, 0.5, 8.0)
    assert leg.shape == (200, 60, 3) and (leg[:, 20:] < 128).any()  # tick labels drawn
    ev = event_image(np.array([1, 2]), np.array([0, 0]), np.array([1, -1]), 3, 4)
    assert tuple(ev[0, 1]) == (40, 40, 220) and tuple(ev[0, 2]) == (220, 90, 30) and tuple(ev[1, 1]) == (255, 255, 255)


@pytest.mark.parametrize("legend", [lambda h: depth_legend(h, 0.5, 10.0), lambda h: depth_legend(h, 2.3, 3.4),
                                    lambda h: disparity_legend(h, 63.0), lambda h: error_legend(h, 3.0)])
@pytest.mark.parametrize("height", [128, 260])
def test_every_legend_has_its_colour_map_and_labels_inside(legend, height):
    leg = legend(height)
    assert leg.shape == (height, LEGEND_WIDTH, 3) and not leg.flags.writeable
    assert len(np.unique(leg[:, :16].reshape(-1, 3), axis=0)) > 30  # the colour map
    text = (leg[:, 22:] < 128).any(axis=(1, 2))
    assert text[: height // 4].any() and text[-height // 4 :].any()  # labels at both ends (units in them)
    assert not text[:2].any() and not text[-2:].any()  # none cut off at the edges
    img = np.zeros((height, 10, 3), np.uint8)
    assert with_legend(img, leg).shape == (height, 10 + LEGEND_WIDTH, 3)


def test_tensor_event_image_draws_events_by_polarity():
    x = np.zeros((1, 5, 3, 4), np.float32)
    x[0, 1, 0, 1] = 1.0
    x[0, 2, 2, 3] = -2.0
    img = tensor_event_image(x)
    assert tuple(img[0, 1]) == (40, 40, 220) and tuple(img[2, 3]) == (220, 90, 30)
    assert tuple(img[1, 1]) == (255, 255, 255)


def test_event_image_and_blank_panels_equal_their_plain_numpy_definitions():
    """The fast paths of the live view (numba event codes, a memset background) draw exactly
    what the plain numpy versions draw, whatever the coordinate and polarity types."""
    from evstereo.viz.colors import _EVENT_COLOURS
    from evstereo.viz.viewer import BACKGROUND, _blank

    rng = np.random.default_rng(3)
    h, w, n = 26, 35, 2000  # dense enough that pixels get both polarities
    for dtype, pol in ((np.uint16, np.int8), (np.int64, bool), (np.int32, np.float32)):
        x, y = rng.integers(0, w, n).astype(dtype), rng.integers(0, h, n).astype(dtype)
        p = rng.integers(0, 2, n).astype(pol)
        code = np.zeros(h * w, np.uint8)
        flat = y.astype(np.int64) * w + x.astype(np.int64)
        code[flat[p > 0]] = 1
        code[flat[~(p > 0)]] |= 2
        assert set(np.unique(code)) == {0, 1, 2, 3}
        np.testing.assert_array_equal(event_image(x, y, p, h, w), _EVENT_COLOURS[code].reshape(h, w, 3))
    assert event_image(np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), 2, 3).min() == 255  # no event: white
    outside = event_image(np.array([-1, 3, 1]), np.array([0, 0, 2]), np.array([1, 1, 1]), 2, 3)
    assert outside.min() == 255  # events off the sensor are not drawn (nor written anywhere)
    np.testing.assert_array_equal(_blank(4, 5), np.full((4, 5, 3), BACKGROUND, np.uint8))
