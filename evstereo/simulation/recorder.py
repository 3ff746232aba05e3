"""Synthesize a stereo event recording in the exact MVSEC layout, with ground truth.

``synthesize(out_dir, name, seconds, seed)`` builds a random textured room and a smooth
trajectory, renders both cameras of the real MVSEC indoor_flying rig in their raw (fisheye)
pixel grids, turns the renders into events, and streams everything, one time chunk after the
other, into ``NAME_data.hdf5`` / ``NAME_gt.hdf5`` plus ``NAME_calib/camchain-imucam-NAME.yaml``.

Render steps are adaptive: each chunk is rendered often enough that no scene point moves more
than ``max_step_px`` pixels between two renders (measured by re-projecting the last depth map
through the fisheye model), so event timing stays accurate when the camera moves fast and no
time is wasted when it moves slowly. Memory is bounded by one chunk whatever the duration.

Storage: depth is rounded to ``depth_significant_bits`` (16: within 1.5e-5 of the exact value)
so that, with the writer's lossless gzip, ground truth takes about 3.4x less disk than raw
float32; APS frames are gzip-compressed; events are compressed only with ``compress_events``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from evstereo.recordings.mvsec_writer import MVSECWriter, calibration_file
from evstereo.fileio import check_writable
from evstereo.geometry import CAMERAS, CameraCalibration, StereoCalibration, load_camchain
from evstereo.simulation.event_sim import EventSensor, SensorParams
from evstereo.simulation.raycast import RayBundle, render
from evstereo.simulation.scene import Scene, build_scene
from evstereo.simulation.trajectory import Trajectory

DEFAULT_CALIBRATION = Path(__file__).with_name("indoor_flying_camchain.yaml")
T_START_S = 1_500_000_000.0  # absolute start time, Unix-like as in MVSEC's ROS timestamps
US = 1_000_000


@dataclass(frozen=True)
class SynthOptions:
    """Everything that shapes a recording besides its name, duration and seed."""

    speed: float = 1.0  # trajectory speed factor (event rate grows about linearly with it)
    threshold: float = 0.25  # mean contrast threshold (log units)
    threshold_sigma: float = 0.03
    refractory_us: int = 200
    noise_rate_hz: float = 0.1  # background events per pixel per second
    texture_contrast: float = 1.0  # scales log-reflectance contrast of all textures
    max_step_px: float = 1.0  # largest image motion between two renders (px)
    max_steps_per_chunk: int = 64
    chunk_s: float = 0.05  # generation chunk; events are appended one chunk at a time
    gt_hz: float = 20.0
    aps_hz: float = 25.0
    imu_hz: float = 1000.0
    pose_hz: float = 100.0
    max_depth_m: float = 10.0  # deeper ground truth is marked invalid (NaN)
    # Depth is stored rounded to this many significant bits (16: within 1.5e-5 of the exact
    # value, 0.15 mm at 10 m, far below any error that matters), which lets it compress 2x
    # better than full float32 noise bits; 24 keeps float32 exactly.
    depth_significant_bits: int = 16

    def sensor(self) -> SensorParams:
        return SensorParams(self.threshold, self.threshold_sigma, int(self.refractory_us), self.noise_rate_hz)


@dataclass
class _Camera:
    """A camera of the rig as the renderer needs it."""

    name: str
    calib: CameraCalibration
    T_left_cam: np.ndarray  # camera -> left camera
    raw: RayBundle  # rays through raw (distorted) pixels
    rect: RayBundle  # rays through rectified pixels, in the raw camera frame
    rect_z: np.ndarray  # (P,) Z_rect / Z_raw-ray-parameter for the rectified rays
    rect_valid: np.ndarray  # (P,) rectified pixel seen by the sensor at all
    sensor: EventSensor
    flow_pts: np.ndarray  # (M,) pixel indices used to measure image motion
    depth: np.ndarray | None = None  # last rendered raw depth (for the motion estimate)


def _project(calib: CameraCalibration, pts: np.ndarray) -> np.ndarray:
    """Camera-frame points (N, 3) -> raw pixels (N, 2) through the camera's distortion model."""
    pts = np.ascontiguousarray(pts.reshape(-1, 1, 3), np.float64)
    if calib.distortion_model == "equidistant":
        out, _ = cv2.fisheye.projectPoints(pts, np.zeros(3), np.zeros(3), calib.K, calib.D)
    else:
        D = calib.D if calib.distortion_model in ("radtan", "plumb_bob") else np.zeros(4)
        out, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), calib.K, D)
    return out.reshape(-1, 2)


def _make_camera(name: str, calib: CameraCalibration, T_left_cam: np.ndarray, sensor: EventSensor) -> _Camera:
    raw_rays = calib.pixel_rays(rectified=False)
    rect_rays = calib.pixel_rays(rectified=True)
    rect_z = (rect_rays.reshape(-1, 3) @ calib.R.T)[:, 2]
    # A rectified pixel whose ray leaves the raw sensor has no events, so no valid depth either.
    proj = _project(calib, rect_rays.reshape(-1, 3))
    valid = ((proj[:, 0] >= -0.5) & (proj[:, 0] <= calib.width - 0.5)
             & (proj[:, 1] >= -0.5) & (proj[:, 1] <= calib.height - 0.5))
    ys, xs = np.mgrid[4 : calib.height : 8, 4 : calib.width : 8]
    return _Camera(name, calib, T_left_cam, RayBundle.from_grid(raw_rays), RayBundle.from_grid(rect_rays),
                   rect_z, valid, sensor, (ys * calib.width + xs).ravel())


def _image_motion(cam: _Camera, T_a: np.ndarray, T_b: np.ndarray) -> float:
    """Largest pixel motion of the scene points seen at pose T_a when the camera moves to T_b."""
    if cam.depth is None:
        return 0.0
    z = cam.depth[cam.flow_pts]
    ok = np.isfinite(z)
    pts = cam.raw.rays[cam.flow_pts[ok]] * z[ok, None]
    rel = np.linalg.inv(T_b) @ T_a
    moved = pts @ rel[:3, :3].T + rel[:3, 3]
    front = moved[:, 2] > 0.05
    if not np.any(front):
        return 0.0
    d = _project(cam.calib, moved[front]) - _project(cam.calib, pts[front])
    return float(np.sqrt((d**2).sum(1)).max())


def _times(rate_hz: float, total_us: int, phase: float = 0.0) -> np.ndarray:
    """Sample times (us) of a stream at ``rate_hz`` over [0, total_us]."""
    period = US / rate_hz
    n = int(np.floor((total_us - phase * period) / period)) + 1
    return np.round((np.arange(n) + phase) * period).astype(np.int64)


def _to_seconds(t_us: np.ndarray) -> np.ndarray:
    return T_START_S + np.asarray(t_us, np.int64) * 1e-6


def round_significant(depth: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded (half away from zero) to ``bits`` significant bits; NaN stays NaN."""
    d = np.ascontiguousarray(depth, np.float32)
    if bits >= 24:
        return d
    if bits < 2:
        raise ValueError(f"depth_significant_bits must be 2..24, not {bits}")
    drop = 24 - bits
    u = d.view(np.uint32).copy()
    finite = np.isfinite(d)
    u[finite] = (u[finite] + np.uint32(1 << (drop - 1))) & np.uint32(~((1 << drop) - 1) & 0xFFFFFFFF)
    return u.view(np.float32)


def _aps_image(radiance: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Linear radiance -> 8-bit APS frame: fixed exposure, gamma, a little read noise."""
    img = np.clip(radiance.reshape(shape) / 0.8, 0, 1) ** (1 / 2.2) * 255
    img += rng.normal(0, 1.0, shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def synthesize(out_dir: str | os.PathLike, name: str, seconds: float, seed: int, *,
               calibration: str | os.PathLike | None = None,
               progress: Callable[[float], None] | None = None, compress_events: bool | None = None,
               **options) -> dict:
    """Write ``out_dir/NAME_data.hdf5``, ``NAME_gt.hdf5`` and ``NAME_calib/camchain-imucam-NAME.yaml``.

    ``options`` are the fields of :class:`SynthOptions`. ``progress`` is called with the
    seconds of recording finished after each chunk. ``compress_events`` chooses the event
    storage (default: the writer's, see :mod:`evstereo.recordings.mvsec_writer`). The same seed
    and options give identical files. A read-only or full ``out_dir`` fails (OSError naming
    it) before any rendering. Returns a summary: paths, sizes, event counts and rates, frame
    counts, wall time.
    """
    unknown = set(options) - {f.name for f in fields(SynthOptions)}
    if unknown:
        raise TypeError(f"unknown synthesis options: {', '.join(sorted(unknown))}")
    opt = SynthOptions(**options)
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    if not name or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(f"name must be a plain file name stem, not {name!r}")
    wall0 = time.perf_counter()
    out_dir = Path(out_dir)
    check_writable(out_dir, folder=True)
    calib: StereoCalibration = load_camchain(calibration or DEFAULT_CALIBRATION)
    height, width = calib.size

    # Independent streams, so that e.g. the noise draws never shift the scene.
    s_traj, s_scene, s_left, s_right, s_aps = (np.random.default_rng(s)
                                               for s in np.random.SeedSequence(seed).spawn(5))
    traj = Trajectory.random(s_traj, opt.speed)
    T_left_right = np.linalg.inv(calib.T_right_left)
    lo, hi = traj.extent()
    margin = np.linalg.norm(T_left_right[:3, 3]) + 0.02  # the right camera sits ~10 cm aside
    scene: Scene = build_scene(s_scene, lo - margin, hi + margin, texture_contrast=opt.texture_contrast)
    params = opt.sensor()
    cams = [_make_camera("left", calib.left, np.eye(4), EventSensor(height, width, params, s_left)),
            _make_camera("right", calib.right, T_left_right, EventSensor(height, width, params, s_right))]

    total_us = int(round(seconds * US))
    chunk_us = max(1000, int(round(opt.chunk_s * US)))
    gt_ts = _times(opt.gt_hz, total_us)[1:]  # the first frame gets a full window of events
    aps_ts = _times(opt.aps_hz, total_us, phase=0.5)
    imu_ts = _times(opt.imu_hz, total_us)
    pose_ts = _times(opt.pose_hz, total_us)
    n_events = {c: 0 for c in CAMERAS}
    n_renders = 0
    calib_path = calibration_file(out_dir / f"{name}_calib", name)
    attrs = {
        "generator": "evstereo.simulation",
        "seed": int(seed),
        "seconds": float(seconds),
        "options_json": json.dumps(asdict(opt), sort_keys=True),
        "scene_json": json.dumps(scene.describe(), sort_keys=True),
    }

    with MVSECWriter(out_dir / f"{name}_data.hdf5", out_dir / f"{name}_gt.hdf5", height, width, attrs,
                     compress_events=compress_events) as writer:
        for cam in cams:
            rad, cam.depth = render(scene, cam.raw, traj.pose(np.array([0.0]), cam.T_left_cam)[0])
            cam.sensor.start(cam.sensor.log(rad), 0)
        a = 0
        while a < total_us:
            b = min(a + chunk_us, total_us)
            lo_t = -1 if a == 0 else a  # streams sampled at t = 0 belong to the first chunk

            # Events: render often enough that image motion per step stays below max_step_px.
            motion = max(_image_motion(cam, *traj.pose(np.array([a / US, b / US]), cam.T_left_cam)) for cam in cams)
            n_steps = int(np.clip(np.ceil(motion / opt.max_step_px), 1, opt.max_steps_per_chunk))
            step_ts = a + np.round(np.arange(1, n_steps + 1) * (b - a) / n_steps).astype(np.int64)
            for cam in cams:
                poses = traj.pose(step_ts / US, cam.T_left_cam)
                logs = np.empty((n_steps, height * width), np.float32)
                for k in range(n_steps):
                    rad, depth = render(scene, cam.raw, poses[k])
                    logs[k] = cam.sensor.log(rad)
                cam.depth = depth
                x, y, t, p = cam.sensor.advance(logs, step_ts)
                writer.add_events(cam.name, x, y, _to_seconds(t), p)
                n_events[cam.name] += len(t)
            n_renders += n_steps

            # Ground truth depth, raw and rectified, for both cameras.
            ts = gt_ts[(gt_ts > lo_t) & (gt_ts <= b)]
            for cam in cams:
                raw_d, rect_d = [], []
                for T in traj.pose(ts / US, cam.T_left_cam):
                    _, z = render(scene, cam.raw, T, with_radiance=False)
                    raw_d.append(np.where((z > 0) & (z <= opt.max_depth_m), z, np.nan).reshape(height, width))
                    # Z in the rectified frame: the rectified rays are in the raw frame, so rotate.
                    _, t_hit = render(scene, cam.rect, T, with_radiance=False)
                    zr = np.where(cam.rect_valid, t_hit * cam.rect_z, np.nan)
                    rect_d.append(np.where((zr > 0) & (zr <= opt.max_depth_m), zr, np.nan).reshape(height, width))
                if len(ts):
                    bits = opt.depth_significant_bits
                    writer.add_depth(cam.name, "raw", round_significant(np.stack(raw_d), bits), _to_seconds(ts))
                    writer.add_depth(cam.name, "rect", round_significant(np.stack(rect_d), bits), _to_seconds(ts))
            if len(ts):
                writer.add_pose("odometry", traj.pose(ts / US), _to_seconds(ts))

            # APS frames, IMU and motion-capture poses.
            ts = aps_ts[(aps_ts > lo_t) & (aps_ts <= b)]
            if len(ts):
                for cam in cams:
                    frames = [_aps_image(render(scene, cam.raw, T)[0], (height, width), s_aps)
                              for T in traj.pose(ts / US, cam.T_left_cam)]
                    writer.add_images(cam.name, np.stack(frames), _to_seconds(ts))
            ts = imu_ts[(imu_ts > lo_t) & (imu_ts <= b)]
            if len(ts):
                for cam in cams:
                    writer.add_imu(cam.name, traj.imu(ts / US, cam.T_left_cam), _to_seconds(ts))
            ts = pose_ts[(pose_ts > lo_t) & (pose_ts <= b)]
            if len(ts):
                writer.add_pose("pose", traj.pose(ts / US), _to_seconds(ts))

            if progress is not None:
                progress((b - a) / US)
            a = b
        # Inside the writer's context: if this fails, the HDF5 files are dropped too.
        try:
            calib.to_camchain_yaml(calib_path)
        except OSError as exc:  # the message names the temporary; name the file the user asked for
            raise OSError(exc.errno, exc.strerror, str(calib_path)) from None

    written = [out_dir / f"{name}_data.hdf5", out_dir / f"{name}_gt.hdf5", calib_path]
    return {
        "data": str(out_dir / f"{name}_data.hdf5"),
        "gt": str(out_dir / f"{name}_gt.hdf5"),
        "calibration": str(calib_path),
        "bytes": int(sum(p.stat().st_size for p in written)),
        "seconds": float(seconds),
        "events": dict(n_events),
        "rate_mev_s": {c: n_events[c] / seconds / 1e6 for c in CAMERAS},
        "gt_frames": int(len(gt_ts)),
        "aps_frames": int(len(aps_ts)),
        "imu_samples": int(len(imu_ts)),
        "renders_per_s": n_renders / seconds,
        "scene": scene.describe(),
        "wall_s": time.perf_counter() - wall0,
    }
