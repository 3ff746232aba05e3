"""Stereo calibration, rectification, disparity <-> depth and back-projection.

Reads MVSEC's Kalibr camchain YAML (equidistant/fisheye or radtan distortion, rectification
R, projection P per camera) and MVSEC's ``*_x_map.txt`` / ``*_y_map.txt`` rectification maps.
Conventions: pixel maps are (H, W); the rectified left camera is the reference frame; depth
is Z in that frame (metres); disparity d = f*B / Z in pixels, NaN where invalid.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from evstereo.errors import InputError
from evstereo.fileio import read_yaml, write_text_atomic

CAMERAS = ("left", "right")


@dataclass
class CameraCalibration:
    """One camera: raw intrinsics and distortion, plus its rectification R and projection P."""

    width: int
    height: int
    K: np.ndarray  # 3x3 raw intrinsics
    D: np.ndarray  # distortion coefficients
    R: np.ndarray  # 3x3 rectification rotation (raw camera frame -> rectified frame)
    P: np.ndarray  # 3x4 rectified projection
    distortion_model: str = "equidistant"
    # Optional official lookup table raw pixel -> rectified (x, y); (H, W, 2) float32.
    event_map: np.ndarray | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    def undistort_normalized(self, x: np.ndarray, y: np.ndarray, rectify: bool) -> np.ndarray:
        """Raw pixel coordinates -> normalised coordinates (X/Z, Y/Z), (N, 2) float64.

        With ``rectify`` the coordinates are in the rectified camera frame, else in the raw one.
        """
        pts = np.stack([np.asarray(x, np.float64), np.asarray(y, np.float64)], -1).reshape(-1, 1, 2)
        R = self.R if rectify else np.eye(3)
        if self.distortion_model == "equidistant":
            out = cv2.fisheye.undistortPoints(pts, self.K, self.D, R=R, P=np.eye(3))
        elif self.distortion_model in ("radtan", "plumb_bob"):
            out = cv2.undistortPoints(pts, self.K, self.D, R=R, P=np.eye(3))
        elif self.distortion_model == "none":
            homog = np.concatenate([pts.reshape(-1, 2), np.ones((len(pts), 1))], 1)
            ray = (R @ np.linalg.inv(self.K) @ homog.T).T
            out = ray[:, :2] / ray[:, 2:3]
        else:
            raise ValueError(f"unsupported distortion model {self.distortion_model!r}")
        return out.reshape(-1, 2)

    def rectify_points(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw pixel coordinates -> rectified pixel coordinates (float)."""
        n = self.undistort_normalized(x, y, rectify=True)
        P = self.P
        return P[0, 0] * n[:, 0] + P[0, 2], P[1, 1] * n[:, 1] + P[1, 2]

    def rectify_lut(self) -> np.ndarray:
        """(H, W, 2) float32 table: rectified (x, y) of every raw pixel (events are rectified by lookup)."""
        if self.event_map is None:
            ys, xs = np.mgrid[0 : self.height, 0 : self.width]
            xr, yr = self.rectify_points(xs.ravel(), ys.ravel())
            self.event_map = np.stack([xr, yr], -1).reshape(self.height, self.width, 2).astype(np.float32)
        return self.event_map

    def image_rectify_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps that warp a raw image into the rectified image."""
        size = (self.width, self.height)
        if self.distortion_model == "equidistant":
            return cv2.fisheye.initUndistortRectifyMap(self.K, self.D, self.R, self.P[:3, :3], size, cv2.CV_32FC1)
        D = self.D if self.distortion_model in ("radtan", "plumb_bob") else np.zeros(4)
        return cv2.initUndistortRectifyMap(self.K, D, self.R, self.P[:3, :3], size, cv2.CV_32FC1)

    def pixel_rays(self, rectified: bool) -> np.ndarray:
        """(H, W, 3) ray directions with Z = 1 for every pixel, in the raw camera frame.

        ``rectified=False``: rays through the raw (distorted) pixels. ``rectified=True``: rays
        through the pixels of the rectified image, rotated back into the raw camera frame.
        """
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        if rectified:
            homog = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3)
            rays = (self.R.T @ np.linalg.inv(self.P[:3, :3]) @ homog.T).T
        else:
            n = self.undistort_normalized(xs.ravel(), ys.ravel(), rectify=False)
            rays = np.concatenate([n, np.ones((len(n), 1))], 1)
        rays = rays / rays[:, 2:3]
        return rays.reshape(self.height, self.width, 3)


@dataclass
class StereoCalibration:
    """A rectified stereo pair; ``T_right_left`` maps left-camera points into the right camera."""

    left: CameraCalibration
    right: CameraCalibration
    T_right_left: np.ndarray = field(default_factory=lambda: np.eye(4))
    source: str = ""

    @property
    def focal(self) -> float:
        """Rectified focal length f (px)."""
        return float(self.left.P[0, 0])

    @property
    def fB(self) -> float:
        """f * baseline in px*m (disparity = fB / depth)."""
        return float(-self.right.P[0, 3])

    @property
    def baseline(self) -> float:
        return self.fB / self.focal

    @property
    def size(self) -> tuple[int, int]:
        return self.left.size

    def camera(self, name: str) -> CameraCalibration:
        if name not in CAMERAS:
            raise ValueError(f"camera must be 'left' or 'right', not {name!r}")
        return getattr(self, name)

    @classmethod
    def identity(cls, height: int, width: int, fB: float | None = None, focal: float | None = None) -> "StereoCalibration":
        """Already rectified, undistorted cameras (converted recordings with no calibration)."""
        f = focal if focal is not None else float(max(height, width))
        K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
        P_left = np.concatenate([K, np.zeros((3, 1))], 1)
        P_right = P_left.copy()
        P_right[0, 3] = -(fB if fB is not None else 0.0)
        cams = [CameraCalibration(width, height, K, np.zeros(4), np.eye(3), P, "none") for P in (P_left, P_right)]
        return cls(cams[0], cams[1], np.eye(4), source="identity")

    def to_camchain_yaml(self, path: str | os.PathLike) -> None:
        """Write an MVSEC/Kalibr camchain file (atomically)."""
        doc = {}
        for i, cam in enumerate((self.left, self.right)):
            entry = {
                "camera_model": "pinhole",
                "distortion_model": cam.distortion_model,
                "distortion_coeffs": [float(v) for v in cam.D],
                "intrinsics": [float(cam.K[0, 0]), float(cam.K[1, 1]), float(cam.K[0, 2]), float(cam.K[1, 2])],
                "resolution": [cam.width, cam.height],
                "rectification_matrix": cam.R.tolist(),
                "projection_matrix": cam.P.tolist(),
                "rostopic": f"/davis/{CAMERAS[i]}/image_raw",
            }
            if i == 1:
                entry["T_cn_cnm1"] = self.T_right_left.tolist()
            doc[f"cam{i}"] = entry
        write_text_atomic(path, yaml.safe_dump(doc, sort_keys=False))


def _matrix(path, entry: dict, key: str, shape: tuple[int, int]) -> np.ndarray:
    if key not in entry:
        raise InputError(path, f"calibration entry has no '{key}'")
    try:
        m = np.asarray(entry[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(path, f"'{key}' is not a {shape[0]}x{shape[1]} matrix of numbers") from None
    if m.shape != shape:
        raise InputError(path, f"'{key}' has shape {m.shape}, expected {shape}")
    return m


def _camera_from_entry(path, entry: dict) -> CameraCalibration:
    if not isinstance(entry, dict):
        raise InputError(path, "calibration entry is not a mapping")
    if not isinstance(entry.get("intrinsics"), (list, tuple)) or len(entry["intrinsics"]) != 4:
        raise InputError(path, "calibration entry needs 'intrinsics' [fx, fy, cx, cy]")
    try:
        fx, fy, cx, cy = (float(v) for v in entry["intrinsics"])
    except (TypeError, ValueError):
        raise InputError(path, "'intrinsics' must be four numbers [fx, fy, cx, cy]") from None
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    if not isinstance(entry.get("resolution"), (list, tuple)) or len(entry["resolution"]) != 2:
        raise InputError(path, "calibration entry needs 'resolution' [width, height]")
    try:
        width, height = (int(v) for v in entry["resolution"])
    except (TypeError, ValueError, OverflowError):
        raise InputError(path, "'resolution' must be two integers [width, height]") from None
    try:
        D = np.asarray(entry.get("distortion_coeffs", [0, 0, 0, 0]), np.float64).ravel()
    except (TypeError, ValueError):
        raise InputError(path, "'distortion_coeffs' must be a list of numbers") from None
    return CameraCalibration(
        width=width,
        height=height,
        K=K,
        D=D,
        R=_matrix(path, entry, "rectification_matrix", (3, 3)),
        P=_matrix(path, entry, "projection_matrix", (3, 4)),
        distortion_model=str(entry.get("distortion_model", "equidistant")),
    )


def load_camchain(path: str | os.PathLike) -> StereoCalibration:
    """Parse an MVSEC camchain-imucam-<scene>.yaml (cam0 = left, cam1 = right)."""
    path = Path(path)
    doc = read_yaml(path, "calibration file")
    if not isinstance(doc, dict) or "cam0" not in doc or "cam1" not in doc:
        raise InputError(path, "is not a stereo camchain file (needs cam0 and cam1)")
    left = _camera_from_entry(path, doc["cam0"])
    right = _camera_from_entry(path, doc["cam1"])
    if "T_cn_cnm1" in doc["cam1"]:
        T = _matrix(path, doc["cam1"], "T_cn_cnm1", (4, 4))
    else:
        T = np.eye(4)
    if left.size != right.size:
        raise InputError(path, f"left and right resolutions differ: {left.size} vs {right.size}")
    calib = StereoCalibration(left, right, T, source=str(path))
    check_calibration(calib, path)
    return calib


def check_calibration(calib: StereoCalibration, path: str | os.PathLike | None = None) -> None:
    """InputError naming ``path`` (default: the calibration's source) unless every number is
    finite, the resolution positive, the focal lengths positive and f*B positive (a zero
    baseline makes depth from disparity impossible; a negative one means swapped cameras)."""
    where = path if path is not None else (calib.source or None)
    for name, cam in (("cam0", calib.left), ("cam1", calib.right)):
        if cam.width <= 0 or cam.height <= 0:
            raise InputError(where, f"{name} resolution {cam.width}x{cam.height} is not positive")
        for field_name in ("K", "D", "R", "P"):
            m = getattr(cam, field_name)
            if not np.all(np.isfinite(m)):
                raise InputError(where, f"{name} {_FIELD_NAMES[field_name]} holds NaN or infinite values")
        if not (cam.K[0, 0] > 0 and cam.K[1, 1] > 0):
            raise InputError(where, f"{name} focal length (intrinsics fx={cam.K[0, 0]:g}, fy={cam.K[1, 1]:g}) "
                                    "must be positive")
        if not (cam.P[0, 0] > 0 and cam.P[1, 1] > 0):
            raise InputError(where, f"{name} rectified focal length (projection_matrix P[0][0]={cam.P[0, 0]:g}, "
                                    f"P[1][1]={cam.P[1, 1]:g}) must be positive")
    if not np.all(np.isfinite(calib.T_right_left)):
        raise InputError(where, "cam1 T_cn_cnm1 holds NaN or infinite values")
    fB = calib.fB
    if fB == 0:
        raise InputError(where, "cam1 projection_matrix P[0][3] is 0: a zero baseline, so depth cannot be "
                                "computed from disparity (P[0][3] = -f*B for the right camera)")
    if fB < 0:
        raise InputError(where, f"cam1 projection_matrix P[0][3] = {-fB:g} is positive: f*B would be negative "
                                "(are cam0 and cam1 swapped? cam0 must be the left camera)")


_FIELD_NAMES = {"K": "intrinsics", "D": "distortion_coeffs", "R": "rectification_matrix", "P": "projection_matrix"}


def load_rectify_map_txt(x_path: str | os.PathLike, y_path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """Read MVSEC's ``*_x_map.txt`` / ``*_y_map.txt`` into an (H, W, 2) float32 lookup table."""
    maps = []
    for p in (x_path, y_path):
        try:
            m = np.loadtxt(p, dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise InputError(p, f"cannot be read as a rectification map ({exc})") from None
        if m.shape != (height, width):
            raise InputError(p, f"rectification map has shape {m.shape}, expected {(height, width)}")
        maps.append(m)
    return np.stack(maps, -1)


def load_calibration(path: str | os.PathLike) -> StereoCalibration:
    """Calibration from a camchain YAML, or a folder holding one (and optionally MVSEC maps).

    In a folder, ``*left_x_map.txt``/``*left_y_map.txt`` (and right) replace the computed
    event rectification tables, as in the official MVSEC release.
    """
    path = Path(path)
    if path.is_dir():
        yamls = sorted(path.glob("camchain*.yaml")) or sorted(path.glob("*.yaml"))
        if not yamls:
            raise InputError(path, "calibration folder holds no camchain YAML")
        calib = load_camchain(yamls[0])
        for name in CAMERAS:
            xs, ys = sorted(path.glob(f"*{name}_x_map.txt")), sorted(path.glob(f"*{name}_y_map.txt"))
            if xs and ys:
                cam = calib.camera(name)
                cam.event_map = load_rectify_map_txt(xs[0], ys[0], cam.height, cam.width)
        return calib
    return load_camchain(path)


# --- the automatic input scale of the networks (evstereo.datasets.scaling explains it) ---
NOMINAL_HW = (260, 346)  # the DAVIS346 / MVSEC resolution the networks are trained around
NOMINAL_FB = 19.9418  # px*m: the MVSEC indoor_flying rig's f*B (its P_right[0, 3])
SCALE_STEP = 0.25  # automatic scales are multiples of this, so nearby sensor sizes share one
SCALE_RANGE = (0.25, 4.0)
EVENT_SCALE_STEP = 0.05  # the events' bound moves with whole pixels of disparity: a finer grid than the rules'
RAISE_MAX_PIXELS = 2.0  # the events raise the factor until the input has at most this many nominal sensors of pixels


def auto_scale_and_rule(height: int, width: int, nominal_hw: tuple[int, int] = NOMINAL_HW,
                        fB: float | None = None, disparity: float | None = None,
                        max_disparity: float | None = None) -> tuple[float, str]:
    """The automatic factor (see evstereo.datasets.scaling) and the rule that chose it, within
    SCALE_RANGE. "calibration": NOMINAL_FB / fB when ``fB`` is known and positive (a multiple of
    SCALE_STEP: 1.0 for the MVSEC rig); else "sensor size": the factor that brings a ``height``
    x ``width`` sensor to the nominal pixel count (a multiple of SCALE_STEP). Either is bound by
    the recording's typical disparity from its events (``disparity``, px), rule "events", a
    multiple of EVENT_SCALE_STEP rounded down: capped where it would pass half of the network's
    ``max_disparity`` (the factor that puts it there, leaving the other half for nearer
    objects), and raised where it would stay under a quarter of it (the MVSEC rig's own typical
    disparity: 9 px of the shipped network's 36), towards that quarter but no further than an
    input of RAISE_MAX_PIXELS times the nominal pixel count (a raise costs compute)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"sensor size must be positive, not {height}x{width}")

    def within(s: float, step: float, down: bool = False) -> float:
        s = (math.floor(s / step + 1e-9) if down else round(s / step)) * step
        return float(min(max(round(s, 6), SCALE_RANGE[0]), SCALE_RANGE[1]))

    if fB is not None and math.isfinite(fB) and fB > 0:
        s, rule = within(NOMINAL_FB / fB, SCALE_STEP), "calibration"
    else:
        s, rule = within(math.sqrt(nominal_hw[0] * nominal_hw[1] / (height * width)), SCALE_STEP), "sensor size"
    known = [v is not None and math.isfinite(v) and v > 0 for v in (disparity, max_disparity)]
    if not all(known):
        return s, rule
    if s * disparity > max_disparity / 2:
        return within(max_disparity / 2 / disparity, EVENT_SCALE_STEP, down=True), "events"
    if s * disparity < max_disparity / 4:
        # below the network's resolution at the low end (its cost is built 3 px per level):
        # on a randomised DAVIS240 validation recording (typical disparity 1 px) x1 gave 3.75 px
        # mean error and 17 % 1-px accuracy, x2 2.08 px and 42 %, x4 1.24 px and 56 % (SGBM 5.38 px, 38 %)
        most = math.sqrt(RAISE_MAX_PIXELS * nominal_hw[0] * nominal_hw[1] / (height * width))
        raised = within(min(max_disparity / 4 / disparity, most), EVENT_SCALE_STEP, down=True)
        if raised > s:
            return raised, "events"
    return s, rule


def auto_scale(height: int, width: int, nominal_hw: tuple[int, int] = NOMINAL_HW,
               fB: float | None = None, disparity: float | None = None, max_disparity: float | None = None) -> float:
    """The automatic factor of ``auto_scale_and_rule``."""
    return auto_scale_and_rule(height, width, nominal_hw, fB, disparity, max_disparity)[0]


def depth_to_disparity(depth: np.ndarray, fB: float) -> np.ndarray:
    """Depth (m) -> disparity (px); NaN where depth is not finite or not positive."""
    depth = np.asarray(depth, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.float32(fB) / depth
    disp[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return disp


def disparity_to_depth(disparity: np.ndarray, fB: float) -> np.ndarray:
    """Disparity (px) -> depth (m); NaN where disparity is not finite or not positive."""
    disp = np.asarray(disparity, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.float32(fB) / disp
    depth[~(np.isfinite(disp) & (disp > 0))] = np.nan
    return depth


def backproject(depth: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rectified depth map (H, W) -> points (N, 3) in the rectified camera frame, and the (H, W) mask used."""
    depth = np.asarray(depth, np.float32)
    h, w = depth.shape
    mask = np.isfinite(depth) & (depth > 0)
    ys, xs = np.nonzero(mask)
    z = depth[mask].astype(np.float64)
    fx, fy, cx, cy = P[0, 0], P[1, 1], P[0, 2], P[1, 2]
    pts = np.stack([(xs - cx) / fx * z, (ys - cy) / fy * z, z], -1)
    return pts.astype(np.float32), mask
