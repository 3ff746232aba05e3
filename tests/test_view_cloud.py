"""apps.view_cloud and the Open3D cloud windows: offscreen PNG with no display, bad files, and a
live CloudWindow under Xvfb whose capture matches a real screenshot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest

from conftest import ROOT
from evstereo.viz.cloud_viewer import load_cloud, project_cloud
from evstereo.viz.colors import LEGEND_WIDTH
from evstereo.viz.pointcloud import write_ply
from xvfb import content_box, grab_screen, xvfb  # noqa: F401  (xvfb is a fixture)


def _cloud(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A tilted, coloured square patch 2..4 m in front of the camera."""
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(-1, 1, (2, n))
    pts = np.stack([u, 0.7 * v, 3.0 + 0.8 * u], -1).astype(np.float32)
    cols = np.stack([(u + 1) * 127, (v + 1) * 127, np.full(n, 60)], -1).astype(np.uint8)
    return pts, cols


def view_cloud(*args, env=None) -> subprocess.CompletedProcess:
    env = dict(os.environ) if env is None else env
    return subprocess.run([sys.executable, "-m", "apps.view_cloud", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def no_display_env() -> dict:
    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def test_renders_png_offscreen_without_display(tmp_path):
    ply = tmp_path / "cloud.ply"
    write_ply(ply, *_cloud())
    r = view_cloud(ply, "--width", 400, "--height", 300, env=no_display_env())
    assert r.returncode == 0, r.stderr
    assert "rendered with open3d" in r.stdout  # Open3D's EGL offscreen path works here, no fallback
    img = cv2.imread(str(tmp_path / "cloud.png"))
    assert img.shape == (300, 400, 3)
    view, bar = img[:, : 400 - LEGEND_WIDTH], img[:, 400 - LEGEND_WIDTH :]
    drawn = (view < 245).any(axis=2)
    assert 0.05 < drawn.mean() < 0.9  # a cloud on a white background
    ys, xs = np.nonzero(drawn)
    assert abs(xs.mean() - 170) < 60 and abs(ys.mean() - 150) < 60  # roughly centred
    assert len(np.unique(view[drawn].reshape(-1, 3), axis=0)) > 50  # coloured by depth
    # the depth colour bar (m) on the right: the colour map, and labels on white
    assert len(np.unique(bar[:, :16].reshape(-1, 3), axis=0)) > 50
    assert (bar[:, 20:] < 128).any() and (bar[:, 20:] == 255).mean() > 0.8
    out = tmp_path / "sub" / "explicit.png"
    r = view_cloud(ply, "--png", out, env=no_display_env())
    assert r.returncode == 0 and cv2.imread(str(out)).shape == (768, 1024, 3)


@pytest.mark.parametrize("content, problem", [
    (b"hello world\n", "not a PLY file"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 1000\nproperty float x\nproperty float y\n"
     b"property float z\nend_header\n" + b"\0" * 600, "truncated"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
     b"property float z\nend_header\n", "no points"),
])
def test_bad_file_is_one_clear_line(tmp_path, content, problem):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(content)
    r = view_cloud(bad, "--png", tmp_path / "x.png", env=no_display_env())
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(bad) in lines[0] and problem in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_missing_file(tmp_path):
    r = view_cloud(tmp_path / "nope.ply", env=no_display_env())
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def _square(n: int = 40_000) -> np.ndarray:
    """A square 2 m wide, straight in front of the camera at 3 m (fronto-parallel)."""
    u, v = np.random.default_rng(1).uniform(-1, 1, (2, n))
    return np.stack([u, v, np.full(n, 3.0)], -1).astype(np.float32)


def _side_heights(img: np.ndarray) -> tuple[float, float]:
    """Drawn height of the leftmost and rightmost tenth of the drawn columns."""
    drawn = (img < 245).any(axis=2)
    cols = np.flatnonzero(drawn.any(axis=0))
    k = max(1, len(cols) // 10)
    return tuple(float(drawn[:, c].sum(axis=0).mean()) for c in (cols[:k], cols[-k:]))


def test_the_view_shows_depth_from_an_angle(tmp_path):
    """Straight down the optical axis a fronto-parallel square stays a square; turned about the
    vertical axis, its two sides lie at different distances, so perspective draws them at
    different heights (both renderers)."""
    ply = tmp_path / "square.ply"
    write_ply(ply, _square())
    r = view_cloud(ply, "--png", tmp_path / "o3d.png", "--width", 460, "--height", 300, env=no_display_env())
    assert r.returncode == 0 and "open3d" in r.stdout, r.stderr
    left, right = _side_heights(cv2.imread(str(tmp_path / "o3d.png"))[:, :400])
    assert abs(left / right - 1) > 0.08, (left, right)
    left, right = _side_heights(project_cloud(_square(), None, 400, 300))
    assert abs(left / right - 1) > 0.08, (left, right)


def test_other_ply_variants_and_fallback_renderer(tmp_path):
    o3d = pytest.importorskip("open3d")
    pts, cols = _cloud(500)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(cols / 255.0)
    path = tmp_path / "ascii.ply"
    o3d.io.write_point_cloud(str(path), pcd, write_ascii=True)
    p2, c2 = load_cloud(path)
    np.testing.assert_allclose(p2, pts, atol=1e-4)
    np.testing.assert_array_equal(c2, cols)
    img = project_cloud(pts, cols, 200, 150)  # the numpy fallback draws something centred too
    drawn = (img < 245).any(axis=2)
    assert 0.02 < drawn.mean() < 0.95


WINDOW_SCRIPT = textwrap.dedent("""
    import sys, cv2, numpy as np
    sys.path.insert(0, "tests")
    from test_view_cloud import _cloud
    from evstereo.viz.cloud_viewer import CloudWindow
    win = CloudWindow(width=480, height=360, left=100, top=80)
    pts, cols = _cloud()
    for _ in range(5):
        assert win.update(pts, cols)
    cv2.imwrite(sys.argv[1], win.screenshot())  # capture_screen_float_buffer
    print("ready", flush=True)
    sys.stdin.readline()  # the test takes its screenshot meanwhile
    win.close()
""")


def test_open3d_window_under_xvfb(tmp_path, xvfb):
    cap_path = tmp_path / "capture.png"
    proc = subprocess.Popen([sys.executable, "-c", WINDOW_SCRIPT, str(cap_path)], cwd=ROOT,
                            env=dict(os.environ, DISPLAY=xvfb), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.poll() is not None else line
        screen = grab_screen(xvfb)
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    cv2.imwrite(str(tmp_path / "screen.png"), screen)
    assert content_box(screen) == (100, 80, 480, 360)  # the window, where it was asked to be
    window = screen[80:440, 100:580]
    drawn = (window < 245).any(axis=2)
    assert 0.05 < drawn.mean() < 0.9
    capture = cv2.imread(str(cap_path))
    assert capture.shape == (360, 480, 3)
    # the window shows what Open3D's own capture holds (compared coarsely: the two renders
    # rasterise single points a little differently)
    small = [cv2.resize(im, (60, 45), interpolation=cv2.INTER_AREA).astype(int) for im in (capture, window)]
    assert np.abs(small[0] - small[1]).mean() < 4
    masks = [(im < 245).any(axis=2) for im in (capture, window)]
    assert (masks[0] & masks[1]).sum() / (masks[0] | masks[1]).sum() > 0.6


def test_view_cloud_opens_a_window_with_a_display(tmp_path, xvfb):
    ply = tmp_path / "cloud.ply"
    write_ply(ply, *_cloud())
    proc = subprocess.Popen([sys.executable, "-m", "apps.view_cloud", str(ply), "--width", "400", "--height", "300"],
                            cwd=ROOT, env=dict(os.environ, DISPLAY=xvfb), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = None
    try:
        deadline = time.monotonic() + 60
        while seen is None and time.monotonic() < deadline and proc.poll() is None:
            screen = grab_screen(xvfb)
            box = content_box(screen)
            if box is not None and box[2:] == (400, 300):
                x, y, w, h = box
                if (screen[y : y + h, x : x + w] < 245).any(axis=2).mean() > 0.05:
                    seen = screen
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)  # the window waits for its user; Ctrl-C must end it too
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert seen is not None, stderr
    assert proc.returncode == 130 and stderr.strip().splitlines() == ["interrupted"], stderr
    assert not (tmp_path / "cloud.png").exists()  # a window, not a picture
