"""Point-cloud windows and pictures with Open3D's legacy ``Visualizer``.

``CloudWindow`` is the live window of ``apps.live_depth --cloud`` (the geometry is updated
in place every frame); ``render_cloud`` draws a cloud into an image offscreen, which works
with no display at all: Open3D's legacy Visualizer falls back to EGL offscreen rendering
(Mesa's software renderer on a machine without a GPU). Should Open3D be missing or unable
to create a context, ``render_cloud`` falls back to ``project_cloud``, a small z-buffered
numpy projection, and says so.

The view: points are in the rectified left camera's frame (x right, y down, z forward). The
camera looks at the cloud's centre from behind it, turned ``VIEW_AZIMUTH_DEG`` about the
vertical axis and raised ``VIEW_ELEVATION_DEG`` above it, so depth shows as shape (straight
down the optical axis a cloud looks like a flat depth image). ``depth_colours`` colours
points by their depth (z) and ``cloud_picture`` puts the matching colour bar (m) beside the
render.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from evstereo.errors import InputError
from evstereo.fileio import atomic_path
from evstereo.viz.colors import LEGEND_WIDTH, colorize_depth, depth_legend, with_legend
from evstereo.viz.pointcloud import read_ply

BACKGROUND_RGB = (1.0, 1.0, 1.0)
VIEW_AZIMUTH_DEG = 35.0  # about the vertical (y) axis
VIEW_ELEVATION_DEG = 20.0  # from above


def _o3d():
    # GLFW complains ("error: XDG_RUNTIME_DIR is invalid") when the variable is unset, which
    # reads like one of our own errors; a private runtime folder silences it.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"evstereo-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import open3d as o3d  # optional dependency (the `viz` extra); imported only when a cloud is shown

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    return o3d


def _point_cloud(o3d, points: np.ndarray, colors: np.ndarray | None):
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(np.asarray(points, np.float64).reshape(-1, 3))
    if colors is not None and len(colors):
        pcd.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64).reshape(-1, 3) / 255.0)
    return pcd


def view_front(azimuth_deg: float = VIEW_AZIMUTH_DEG, elevation_deg: float = VIEW_ELEVATION_DEG) -> np.ndarray:
    """Unit vector from the looked-at point towards the eye (Open3D's "front"), in camera
    coordinates (y down): (0, 0, -1), behind the cloud, turned by azimuth and raised by elevation."""
    a, e = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(a) * np.cos(e), -np.sin(e), -np.cos(a) * np.cos(e)])


def _centre(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(1)]
    return np.median(pts, 0) if len(pts) else np.zeros(3)


def _camera_view(vis, points: np.ndarray) -> None:
    """Look at the cloud's centre from ``view_front()``, y down on the screen (see the module doc)."""
    ctr = vis.get_view_control()
    ctr.set_front(view_front().tolist())
    ctr.set_up([0.0, -1.0, 0.0])
    if len(points):
        ctr.set_lookat(_centre(points))
    ctr.set_zoom(0.7)


def _render_options(vis, point_size: float) -> None:
    opt = vis.get_render_option()
    opt.background_color = np.asarray(BACKGROUND_RGB)
    opt.point_size = point_size


def capture(vis) -> np.ndarray:
    """The Visualizer's current picture as a BGR uint8 image."""
    buf = np.asarray(vis.capture_screen_float_buffer(do_render=True))
    return cv2.cvtColor((np.clip(buf, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


class CloudWindow:
    """A live Open3D window: ``update(points, rgb)`` replaces the cloud, ``poll()`` is False once closed."""

    def __init__(self, title: str = "evstereo point cloud", width: int = 640, height: int = 480,
                 left: int = 50, top: int = 50, point_size: float = 2.0, visible: bool = True) -> None:
        o3d = _o3d()
        self._o3d = o3d
        self.vis = o3d.visualization.Visualizer()
        if not self.vis.create_window(window_name=title, width=width, height=height, left=left, top=top,
                                      visible=visible):
            raise RuntimeError("Open3D could not create a window")
        _render_options(self.vis, point_size)
        self.pcd = o3d.geometry.PointCloud()
        self._added = False
        self._framed = False
        self.open = True

    def update(self, points: np.ndarray, colors: np.ndarray | None = None) -> bool:
        """Show a new cloud (N, 3) with (N, 3) uint8 RGB colours; False once the window is closed."""
        new = _point_cloud(self._o3d, points, colors)
        self.pcd.points, self.pcd.colors = new.points, new.colors
        if not self._added:
            self.vis.add_geometry(self.pcd, reset_bounding_box=True)
            self._added = True
        else:
            self.vis.update_geometry(self.pcd)
        if not self._framed and len(points):
            # frame the first non-empty cloud; later frames keep the user's view
            self.vis.reset_view_point(True)
            _camera_view(self.vis, points)
            self._framed = True
        return self.poll()

    def poll(self) -> bool:
        if self.open:
            self.open = bool(self.vis.poll_events())
            if self.open:
                self.vis.update_renderer()
        return self.open

    def screenshot(self) -> np.ndarray:
        """The window's picture (BGR), rendered now."""
        return capture(self.vis)

    def close(self) -> None:
        try:
            self.vis.destroy_window()
        except Exception:  # already gone with the window
            pass
        self.open = False


def project_cloud(points: np.ndarray, colors: np.ndarray | None, width: int = 800, height: int = 600,
                  point_size: int = 2) -> np.ndarray:
    """Fallback renderer: pinhole projection from the same view as Open3D's (``view_front``),
    nearest point wins; BGR image."""
    img = np.full((height, width, 3), 255, np.uint8)
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    ok = np.isfinite(pts).all(1)
    pts = pts[ok]
    if not len(pts):
        return img
    cols = (np.asarray(colors, np.uint8).reshape(-1, 3)[ok] if colors is not None
            else np.full((len(pts), 3), 80, np.uint8))
    # the eye's axes: forward towards the centre, right and down on the screen
    forward = -view_front()
    right = np.cross([0.0, 1.0, 0.0], forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rel = (pts - np.median(pts, 0)) @ np.stack([right, down, forward], 1)  # centred, in eye axes
    extent = np.percentile(np.abs(rel[:, :2]), 98, axis=0).max() + 1e-6
    z = rel[:, 2] - (rel[:, 2].min() - 2.0 * extent)  # stand back so the cloud fills ~70 % of the view
    f = 0.7 * min(width, height) / 2 / (extent / np.median(z))
    u = np.round(f * rel[:, 0] / z + width / 2).astype(int)
    v = np.round(f * rel[:, 1] / z + height / 2).astype(int)
    order = np.argsort(-z)  # far first, near points overwrite them
    for dy in range(point_size):
        for dx in range(point_size):
            uu, vv = u[order] + dx, v[order] + dy
            inb = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
            img[vv[inb], uu[inb]] = cols[order][inb][:, ::-1]
    return img


def _round_sig(x: float, up: bool) -> float:
    """``x`` rounded down (or up) to two significant digits, so legend ends read as round values."""
    step = 10.0 ** (np.floor(np.log10(x)) - 1)
    q = x / step
    q = round(q) if abs(q - round(q)) < 1e-6 else (np.ceil(q) if up else np.floor(q))  # 2.3 / 0.1 is 22.999...
    return round(float(q * step), 12)


def depth_range(points: np.ndarray) -> tuple[float, float] | None:
    """A depth range (m) for colouring a cloud: its 2nd to 98th percentile of z, in round values;
    None when no point lies in front of the camera (z > 0)."""
    z = np.asarray(points, np.float64).reshape(-1, 3)[:, 2]
    z = z[np.isfinite(z) & (z > 0)]
    if not len(z):
        return None
    lo, hi = (float(v) for v in np.percentile(z, [2, 98]))
    lo, hi = _round_sig(lo, up=False), _round_sig(max(hi, lo * 1.1), up=True)
    return lo, hi


def depth_colours(points: np.ndarray, near: float, far: float) -> np.ndarray:
    """(N, 3) uint8 RGB: each point's depth (z) in ``colorize_depth``'s colours between near and far."""
    z = np.clip(np.asarray(points, np.float32).reshape(-1, 3)[:, 2], near, far)
    bgr = colorize_depth(z[None], near, far)[0]
    return np.ascontiguousarray(bgr[:, ::-1])


def cloud_picture(points: np.ndarray, colors: np.ndarray | None, width: int = 800, height: int = 600,
                  point_size: float = 2.0, legend_range: tuple[float, float] | None = None) -> tuple[np.ndarray, str]:
    """``render_cloud`` at (width, height), or, with ``legend_range`` (near, far in m, the range of
    ``depth_colours``), the render beside its depth colour bar in the same total size."""
    if legend_range is None:
        return render_cloud(points, colors, width, height, point_size)
    image, renderer = render_cloud(points, colors, width - LEGEND_WIDTH, height, point_size)
    return with_legend(image, depth_legend(height, *legend_range)), renderer


def _show_points(o3d, vis, points: np.ndarray, colors: np.ndarray | None, point_size: float) -> None:
    """Put a cloud in an open Visualizer with our render options and camera."""
    _render_options(vis, point_size)
    vis.add_geometry(_point_cloud(o3d, points, colors))
    _camera_view(vis, points)


def render_cloud(points: np.ndarray, colors: np.ndarray | None, width: int = 800, height: int = 600,
                 point_size: float = 2.0) -> tuple[np.ndarray, str]:
    """Render offscreen -> (BGR image, renderer name: "open3d" or "numpy fallback (...)")."""
    try:
        o3d = _o3d()
        vis = o3d.visualization.Visualizer()
        if not vis.create_window(width=width, height=height, visible=False):
            raise RuntimeError("Open3D could not create an offscreen context")
        try:
            _show_points(o3d, vis, points, colors, point_size)
            vis.poll_events()
            vis.update_renderer()
            img = capture(vis)
        finally:
            vis.destroy_window()
        return img, "open3d"
    except (ImportError, RuntimeError) as exc:
        return project_cloud(points, colors, width, height, max(1, int(point_size))), f"numpy fallback ({exc})"


def load_cloud(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a PLY point cloud -> ((N, 3) float32 points, (N, 3) uint8 RGB or None), checking it.

    Our own binary files are read directly; other PLY variants (ASCII, other property
    types) through Open3D. Raises InputError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "does not exist" if not path.exists() else "is not a file")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise InputError(path, "is not a PLY file (no 'ply' ... 'end_header' header)")
    lines = head[:end].decode("ascii", "replace").splitlines()
    n = next((int(ln.split()[2]) for ln in lines if ln.startswith("element vertex") and len(ln.split()) == 3
              and ln.split()[2].isdigit()), None)
    if n is None:
        raise InputError(path, "PLY header declares no vertex element")
    props = [ln.split() for ln in lines if ln.startswith("property")]
    simple = ("format binary_little_endian 1.0" in lines
              and all(p[1] in ("float", "uchar") for p in props)
              and not any(ln.startswith("element") and not ln.startswith("element vertex") for ln in lines))
    if simple:
        try:
            pts, cols = read_ply(path)
        except (ValueError, KeyError):
            raise InputError(path, "PLY vertex data is truncated or does not match its header") from None
        if len(pts) != n:
            what = "only " if len(pts) < n else ""
            why = "truncated file?" if len(pts) < n else "trailing data?"
            raise InputError(path, f"PLY header declares {n} points but the file holds {what}{len(pts)} ({why})")
    else:
        try:
            o3d = _o3d()
        except ImportError:
            raise InputError(path, "this PLY variant needs Open3D to read it (pip install open3d-cpu)") from None
        pcd = o3d.io.read_point_cloud(str(path), format="ply")
        pts = np.asarray(pcd.points, np.float32)
        cols = (np.asarray(pcd.colors) * 255).round().astype(np.uint8) if pcd.has_colors() else None
        if len(pts) != n:
            raise InputError(path, f"PLY header declares {n} points but only {len(pts)} could be read "
                                   "(truncated or corrupt?)")
    if n == 0:
        raise InputError(path, "PLY file holds no points")
    return pts, cols


def show_cloud(points: np.ndarray, colors: np.ndarray | None, title: str = "evstereo point cloud",
               width: int = 1024, height: int = 768, point_size: float = 2.0) -> None:
    """An interactive Open3D window (blocks until it is closed; Ctrl-C closes it too)."""
    o3d = _o3d()
    vis = o3d.visualization.Visualizer()
    if not vis.create_window(window_name=title, width=width, height=height):
        raise RuntimeError("Open3D could not create a window")
    try:
        _show_points(o3d, vis, points, colors, point_size)
        # not vis.run(): Python's Ctrl-C handler runs only between calls, never inside that loop
        while vis.poll_events():
            time.sleep(0.02)
    finally:
        vis.destroy_window()


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an image atomically (format from the suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise InputError(path, "OpenCV could not write this image (unknown image suffix?)")
