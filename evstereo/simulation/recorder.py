"""Synthesize a stereo event recording in the exact MVSEC layout, with ground truth.

``synthesize(out_dir, name, seconds, seed)`` builds a random textured room and a smooth
trajectory, renders both cameras of a stereo rig in their raw pixel grids (by default the
real MVSEC indoor_flying rig, fisheye lenses and all; other sensor presets in
:mod:`evstereo.simulation.rigs`), turns the renders into events, and streams everything, one
time chunk after the other, into ``NAME_data.hdf5`` / ``NAME_gt.hdf5`` plus
``NAME_calib/camchain-imucam-NAME.yaml``.

Realism (all off by default, so the default output stays what it was): per-camera sensor
effects (:mod:`evstereo.simulation.event_sim`: leak, hot pixels, shot noise, photoreceptor
bandwidth, timestamp jitter, latency, a threshold ratio between the cameras) and
rectification residuals: the right camera renders from a true pose and principal point
slightly off the calibration written to the file, while the ground truth of both cameras
follows the written calibration (exact for the left camera, whose geometry is unchanged).
``randomize`` draws the rig, the event density and every realism parameter per seed
(:func:`resolve_options`); the drawn values are stored in the file's attributes.

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
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import cv2
import numpy as np

from evstereo.recordings.mvsec_writer import MVSECWriter, calibration_file
from evstereo.fileio import check_writable
from evstereo.geometry import CAMERAS, CameraCalibration, StereoCalibration, load_camchain
from evstereo.simulation.event_sim import EventSensor, SensorParams
from evstereo.simulation.raycast import RayBundle, render
from evstereo.simulation.rigs import DEFAULT_CALIBRATION  # noqa: F401 (its old home: still importable here)
from evstereo.simulation.rigs import SENSORS, build_rig, describe_rig, draw_rig
from evstereo.simulation.scene import Scene, build_scene, movers_problem
from evstereo.simulation.trajectory import Trajectory

T_START_S = 1_500_000_000.0  # absolute start time, Unix-like as in MVSEC's ROS timestamps
US = 1_000_000


class OptionError(ValueError):
    """A synthesis option with a bad value; ``option`` is the field name (the CLI names its flag)."""

    def __init__(self, option: str, problem: str):
        self.option, self.problem = option, problem
        super().__init__(f"{option} {problem}")


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
    # --- rig (evstereo.simulation.rigs): a preset or "random"; None = the preset's nominal
    # value (davis346 with neither: the MVSEC calibration) or, when drawn, a random one
    sensor: str = "davis346"
    focal_px: float | None = None  # rectified focal length f (px); disparity = f * B / Z
    baseline_m: float | None = None
    # --- sensor realism, per camera (evstereo.simulation.event_sim.SensorParams)
    camera_threshold_ratio_sigma: float = 0.0  # each camera's mean threshold x exp(N(0, s))
    hot_pixel_fraction: float = 0.0
    hot_pixel_rate_hz: float = 100.0
    leak_rate_hz: float = 0.0
    shot_noise_rate_hz: float = 0.0  # per pixel in the dark, falling with intensity
    bandwidth_hz: float = 0.0  # photoreceptor cutoff at full brightness; 0: instantaneous
    timestamp_jitter_us: float = 0.0
    latency_us: tuple[float, float] = (0.0, 0.0)  # constant delay of the (left, right) timestamps
    # --- calibration realism: the right camera's true principal point lies this many rows
    # lower than calibrated, and its true orientation this many degrees off (axis from the seed)
    rectification_residual_px: float = 0.0
    rectification_residual_deg: float = 0.0
    # --- scene content (evstereo.simulation.scene.build_scene)
    layout: str = "room"  # "room" or "outdoor" (a street with a ground plane and a sky)
    thin: int = 0  # thin structures and small objects (poles, wires, blades)
    # independently moving objects: a count of random ones, or their kinds (MOVER_KINDS of the layout)
    movers: int | tuple[str, ...] = 0
    photo_textures: float = 0.0  # share of the surfaces textured with photographs
    # --- draw the rig, density, realism and scene content per seed (options passed
    # explicitly stay as given)
    randomize: bool = False

    def __post_init__(self):
        if isinstance(self.latency_us, list):  # as read back from options_json
            object.__setattr__(self, "latency_us", tuple(self.latency_us))

    def validate(self) -> None:
        """OptionError for the first bad value (names the option and what is wrong)."""
        for f in fields(self):
            v = getattr(self, f.name)
            values = v if isinstance(v, tuple) else (v,)
            if any(isinstance(u, float) and not math.isfinite(u) for u in values):
                raise OptionError(f.name, f"must be finite, not {v}")
        positive = ("speed", "threshold", "max_step_px", "chunk_s", "gt_hz", "aps_hz", "imu_hz", "pose_hz",
                    "max_depth_m", "texture_contrast", "max_steps_per_chunk")
        for name in positive:
            if not getattr(self, name) > 0:
                raise OptionError(name, f"must be positive, not {getattr(self, name)}")
        non_negative = ("threshold_sigma", "refractory_us", "noise_rate_hz", "camera_threshold_ratio_sigma",
                        "hot_pixel_rate_hz", "leak_rate_hz", "shot_noise_rate_hz", "bandwidth_hz",
                        "timestamp_jitter_us", "rectification_residual_deg")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise OptionError(name, f"must not be negative, not {getattr(self, name)}")
        if self.layout not in ("room", "outdoor"):
            raise OptionError("layout", f"must be room or outdoor, not {self.layout!r}")
        if not (isinstance(self.thin, int) and self.thin >= 0):
            raise OptionError("thin", f"must be a count >= 0, not {self.thin!r}")
        problem = movers_problem(self.movers, self.layout)
        if problem:
            raise OptionError("movers", problem)
        if not 0 <= self.photo_textures <= 1:
            raise OptionError("photo_textures", f"must be a share in [0, 1], not {self.photo_textures}")
        if not 2 <= self.depth_significant_bits <= 24:
            raise OptionError("depth_significant_bits", f"must be 2..24, not {self.depth_significant_bits}")
        if self.sensor not in SENSORS + ("random",):
            raise OptionError("sensor", f"must be one of {', '.join(SENSORS)} or random, not {self.sensor!r}")
        for name in ("focal_px", "baseline_m"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise OptionError(name, f"must be positive, not {getattr(self, name)}")
        if not 0 <= self.hot_pixel_fraction <= 1:
            raise OptionError("hot_pixel_fraction", f"must be in [0, 1], not {self.hot_pixel_fraction}")
        if len(self.latency_us) != 2 or not all(v >= 0 for v in self.latency_us):
            raise OptionError("latency_us", f"must be two delays >= 0 (left, right), not {self.latency_us}")
        if abs(self.rectification_residual_px) > 10 or self.rectification_residual_deg > 5:
            raise OptionError("rectification_residual_px" if abs(self.rectification_residual_px) > 10
                              else "rectification_residual_deg", "is far beyond a calibration residual "
                              "(at most 10 px and 5 deg)")

    def sensor_params(self, camera: str = "left", threshold_factor: float = 1.0) -> SensorParams:
        """The pixel model of one camera; ``threshold_factor`` scales its mean threshold."""
        return SensorParams(
            threshold=self.threshold * threshold_factor, threshold_sigma=self.threshold_sigma,
            refractory_us=int(self.refractory_us), noise_rate_hz=self.noise_rate_hz,
            hot_pixel_fraction=self.hot_pixel_fraction, hot_pixel_rate_hz=self.hot_pixel_rate_hz,
            leak_rate_hz=self.leak_rate_hz, shot_noise_rate_hz=self.shot_noise_rate_hz,
            bandwidth_hz=self.bandwidth_hz, timestamp_jitter_us=self.timestamp_jitter_us,
            latency_us=float(self.latency_us[CAMERAS.index(camera)]))


# Independent random streams per seed, so that e.g. the noise draws never shift the scene.
# New streams go at the end: spawned children do not depend on how many are spawned.
_STREAMS = ("trajectory", "scene", "left", "right", "aps", "left_aux", "right_aux", "cameras", "residual",
            "rig", "options")


def _streams(seed: int) -> dict[str, np.random.Generator]:
    return {k: np.random.default_rng(s) for k, s in zip(_STREAMS, np.random.SeedSequence(seed).spawn(len(_STREAMS)))}


# Event density regimes of the randomised mode: probability, signal events per pixel per
# second aimed at (log-uniform; noise comes on top), threshold, texture contrast. On a 346x260
# sensor "sparse" aims at 18-90 k events/s per camera, "dense" at 1.3-4 M; no rig is asked
# for more than MAX_SIGNAL_RATE. The speed for the rate follows from signal_rate_per_pixel.
_DENSITY = {
    "sparse": (0.25, (0.2, 1.0), (0.3, 0.6), (0.3, 0.7)),
    "medium": (0.5, (1.0, 20.0), (0.15, 0.4), (0.6, 1.1)),
    "dense": (0.25, (15.0, 45.0), (0.1, 0.25), (0.8, 1.3)),
}
MAX_SIGNAL_RATE = 5e6  # events/s per camera that the randomised mode aims at, at most
SPEED_RANGE = (0.03, 2.5)  # randomised speeds stay inside (faster costs up to 64 renders per chunk)


def signal_rate_per_pixel(speed: float, threshold: float, texture_contrast: float, focal_px: float) -> float:
    """Rough signal events per pixel per second of these rooms and paths: linear in speed, as
    (contrast / threshold)^1.6 and as sqrt(f / 200) (a longer focal length sees more motion but
    less texture per pixel). Fitted to simulated recordings from 0.03 to 160 events/pixel/s on
    the davis346 and dsec rigs; a given scene and stretch of path is off by up to about 3x
    either way (what a recording got is its summary's ``rate_mev_s``)."""
    return 1.26 * speed * math.sqrt(focal_px / 200.0) * (texture_contrast / threshold) ** 1.6


def _sig(v: float, digits: int = 4) -> float:
    """``v`` to ``digits`` significant digits: drawn values read well in the metadata."""
    return float(f"{v:.{digits}g}")


def _draw_realism(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    """The randomised mode's draws, always all of them and in this order (so that fixing one
    option changes no other draw): (option values, shares that :func:`resolve_options` turns
    into values once the rig and the given options are known).

    Ranges: thresholds 0.1-0.6 with a 5-25 % pixel spread and a 0-15 % lognormal ratio
    between the cameras, refractory 20 us - 1 ms, background noise 0.01-0.3 Hz, hot pixels
    1e-5 - 3e-4 of the sensor at 10-300 Hz, leak 0.01-0.2 Hz, shot noise 0.01-0.5 Hz in
    the dark, bandwidth 50 Hz - 5 kHz at full brightness, jitter 0-300 us, latency 0-500 us per
    camera, rows off by up to 1 px and orientation by up to 0.3 deg (and 1 px at the focal length).
    """
    log_u = lambda lo, hi: math.exp(rng.uniform(math.log(lo), math.log(hi)))  # noqa: E731
    names = list(_DENSITY)
    regime = names[int(rng.choice(len(names), p=[_DENSITY[n][0] for n in names]))]
    _, rate, thr, contrast = _DENSITY[regime]
    shares = {"density": regime, "rate_per_pixel": log_u(*rate)}
    values = {
        "threshold": _sig(rng.uniform(*thr)),
        "texture_contrast": _sig(rng.uniform(*contrast)),
        "refractory_us": int(round(log_u(20, 1000))),
        "noise_rate_hz": _sig(log_u(0.01, 0.3)),
        "camera_threshold_ratio_sigma": _sig(rng.uniform(0, 0.15)),
        "hot_pixel_fraction": _sig(log_u(1e-5, 3e-4)),
        "hot_pixel_rate_hz": _sig(log_u(10, 300)),
        "leak_rate_hz": _sig(log_u(0.01, 0.2)),
        "shot_noise_rate_hz": _sig(log_u(0.01, 0.5)),
        "bandwidth_hz": _sig(log_u(50, 5000)),
        "timestamp_jitter_us": _sig(rng.uniform(0, 300)),
        "latency_us": (_sig(rng.uniform(0, 500)), _sig(rng.uniform(0, 500))),
        "rectification_residual_px": _sig(rng.uniform(-1, 1)),
    }
    shares["threshold_sigma"] = rng.uniform(0.05, 0.25)  # of the threshold
    shares["rotation"] = rng.uniform(0, 1)  # of the largest residual angle
    # Scene content: a street in a quarter of the recordings; thin structures, movers and
    # photographs in most, so that none of them is rare in a training set.
    values["layout"] = "outdoor" if rng.random() < 0.25 else "room"
    values["thin"] = int(rng.integers(0, 9))
    values["movers"] = int(rng.integers(0, 4))
    values["photo_textures"] = _sig(rng.uniform(0, 0.8))
    return values, shares


def resolve_options(seed: int, options: Mapping[str, Any] | None = None,
                    calibration: str | os.PathLike | None = None) -> tuple[SynthOptions, StereoCalibration, dict]:
    """Validate ``options`` (fields of :class:`SynthOptions`) and make every random choice of
    seed ``seed``: with ``randomize``, each option not given in ``options`` is drawn (rig,
    density, realism; the speed follows from a drawn event rate, see ``_DENSITY``);
    ``sensor="random"`` draws the rig alone. Returns the options as used (nothing left to
    draw: passing them back gives the same recording), the rig's calibration, and a record
    ``{"randomized", "density", "target_mev_s", "drawn"}`` (drawn: the fields chosen at
    random). ``calibration`` (a camchain file) replaces the rig and its options.
    """
    options = dict(options or {})
    unknown = set(options) - {f.name for f in fields(SynthOptions)}
    if unknown:
        raise TypeError(f"unknown synthesis options: {', '.join(sorted(unknown))}")
    opt = SynthOptions(**options)
    opt.validate()
    rng = _streams(seed)
    given = set(options) - {"randomize"}
    drawn: dict[str, Any] = {}
    if calibration is not None:
        if opt.sensor == "random" or opt.focal_px is not None or opt.baseline_m is not None:
            raise OptionError("sensor", "cannot be chosen together with a calibration file (the file is the rig)")
        calib = load_camchain(calibration)
    else:
        draw_sensor = opt.sensor == "random" or (opt.randomize and "sensor" not in given)
        if draw_sensor or opt.randomize:
            name, f, b = draw_rig(rng["rig"], "random" if draw_sensor else opt.sensor)
            if draw_sensor:
                drawn["sensor"] = name
            for key, value in (("focal_px", f), ("baseline_m", b)):
                if key not in given:
                    drawn[key] = value
        calib = build_rig(drawn.get("sensor", opt.sensor), drawn.get("focal_px", opt.focal_px),
                          drawn.get("baseline_m", opt.baseline_m))
    record = {"randomized": bool(opt.randomize or drawn), "density": None, "target_mev_s": None}
    if opt.randomize:
        values, shares = _draw_realism(rng["options"])
        drawn.update({k: v for k, v in values.items() if k not in given})
        threshold = drawn.get("threshold", opt.threshold)
        contrast = drawn.get("texture_contrast", opt.texture_contrast)
        n_pix = calib.size[0] * calib.size[1]
        rate = min(shares["rate_per_pixel"], MAX_SIGNAL_RATE / n_pix)
        speed = rate / signal_rate_per_pixel(1.0, threshold, contrast, calib.focal)
        derived = {
            "speed": _sig(float(np.clip(speed, *SPEED_RANGE))),
            "threshold_sigma": _sig(shares["threshold_sigma"] * threshold),
            # The rotation moves rows by about f * angle: at most 0.3 deg and at most 1 px.
            "rectification_residual_deg": _sig(shares["rotation"] * min(0.3, math.degrees(1.0 / calib.focal))),
        }
        drawn.update({k: v for k, v in derived.items() if k not in given})
        record.update(density=shares["density"], target_mev_s=_sig(rate * n_pix / 1e6, 3))
    opt = replace(opt, **drawn)
    opt.validate()
    record["drawn"] = sorted(drawn)
    return opt, calib, record


@dataclass
class _Camera:
    """A camera of the rig as the renderer needs it: its true geometry (events, APS frames,
    IMU) and the calibrated one (ground truth); the two differ only by a rectification residual."""

    name: str
    calib: CameraCalibration  # true intrinsics and distortion
    T_left_cam: np.ndarray  # true camera -> left camera
    raw: RayBundle  # rays through raw (distorted) pixels, true intrinsics
    gt_T_left_cam: np.ndarray  # calibrated camera -> left camera
    gt_raw: RayBundle  # rays through raw pixels, calibrated intrinsics
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


def _make_camera(name: str, calib: CameraCalibration, T_left_cam: np.ndarray, sensor: EventSensor,
                 true: tuple[CameraCalibration, np.ndarray] | None = None) -> _Camera:
    """``calib`` and ``T_left_cam`` as calibrated; ``true``: the real (intrinsics, pose) if they differ."""
    raw_rays = calib.pixel_rays(rectified=False)
    rect_rays = calib.pixel_rays(rectified=True)
    rect_z = (rect_rays.reshape(-1, 3) @ calib.R.T)[:, 2]
    # A rectified pixel whose ray leaves the raw sensor has no events, so no valid depth either.
    proj = _project(calib, rect_rays.reshape(-1, 3))
    valid = ((proj[:, 0] >= -0.5) & (proj[:, 0] <= calib.width - 0.5)
             & (proj[:, 1] >= -0.5) & (proj[:, 1] <= calib.height - 0.5))
    ys, xs = np.mgrid[4 : calib.height : 8, 4 : calib.width : 8]
    gt_raw = RayBundle.from_grid(raw_rays)
    true_calib, true_T = true if true is not None else (calib, T_left_cam)
    raw = gt_raw if true is None else RayBundle.from_grid(true_calib.pixel_rays(rectified=False))
    return _Camera(name, true_calib, true_T, raw, T_left_cam, gt_raw, RayBundle.from_grid(rect_rays),
                   rect_z, valid, sensor, (ys * calib.width + xs).ravel())


def _residual_right(calib: CameraCalibration, T_left_right: np.ndarray, opt: SynthOptions,
                    rng: np.random.Generator) -> tuple[CameraCalibration, np.ndarray] | None:
    """The right camera's true (intrinsics, pose): principal point ``rectification_residual_px``
    rows lower, orientation ``rectification_residual_deg`` off about an axis drawn from ``rng``
    (always drawn, so the axis does not depend on the angle). None without a residual.

    A pinhole camera's rectified rows then move by exactly the residual; a fisheye's by about
    it (times its rectified / raw focal length ratio, 0.88 for MVSEC).
    """
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    if opt.rectification_residual_px == 0 and opt.rectification_residual_deg == 0:
        return None
    K = calib.K.copy()
    K[1, 2] += opt.rectification_residual_px
    R, _ = cv2.Rodrigues(axis * math.radians(opt.rectification_residual_deg))
    T = T_left_right.copy()
    T[:3, :3] = T_left_right[:3, :3] @ R  # the camera turned about its own centre
    return replace(calib, K=K, event_map=None), T


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


def _mover_motion(cam: _Camera, speed_mps: float, dt_s: float) -> float:
    """Bound on the image motion (px) of moving objects over ``dt_s``: f * v * dt / Z with Z the
    nearest depth the camera saw last (a visible mover is no nearer than that)."""
    if speed_mps <= 0 or cam.depth is None:
        return 0.0
    finite = cam.depth[np.isfinite(cam.depth)]
    z_near = max(float(finite.min()) if len(finite) else 0.1, 0.1)
    return float(cam.calib.K[0, 0]) * speed_mps * dt_s / z_near


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

    ``options`` are the fields of :class:`SynthOptions` (see :func:`resolve_options` for
    ``randomize`` and ``sensor="random"``); ``calibration`` a camchain file that replaces the
    sensor preset's rig. ``progress`` is called with the seconds of recording finished after
    each chunk. ``compress_events`` chooses the event storage (default: the writer's, see
    :mod:`evstereo.recordings.mvsec_writer`). The same seed and options give identical files.
    A read-only or full ``out_dir`` fails (OSError naming it) before any rendering. Returns a
    summary: paths, sizes, event counts and rates, frame counts, wall time, and what the
    recording models (``options`` as used, ``rig``, per-camera ``cameras``, ``randomized``),
    which the data file's attributes hold too.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, not {seconds}")
    if not name or os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(f"name must be a plain file name stem, not {name!r}")
    wall0 = time.perf_counter()
    opt, calib, randomized = resolve_options(seed, options, calibration)
    out_dir = Path(out_dir)
    check_writable(out_dir, folder=True)
    height, width = calib.size

    rng = _streams(seed)
    traj = Trajectory.random(rng["trajectory"], opt.speed)
    T_left_right = np.linalg.inv(calib.T_right_left)
    lo, hi = traj.extent()
    margin = np.linalg.norm(T_left_right[:3, 3]) + 0.02  # the right camera sits a baseline aside
    scene: Scene = build_scene(rng["scene"], lo - margin, hi + margin, texture_contrast=opt.texture_contrast,
                               layout=opt.layout, thin=opt.thin, movers=opt.movers, photo_textures=opt.photo_textures)
    # Each camera's mean threshold times its own lognormal factor (1 when the spread is 0).
    factors = np.exp(opt.camera_threshold_ratio_sigma * rng["cameras"].standard_normal(2))
    sensors = [EventSensor(height, width, opt.sensor_params(c, float(k)), rng[c], rng[f"{c}_aux"])
               for c, k in zip(CAMERAS, factors)]
    cams = [_make_camera("left", calib.left, np.eye(4), sensors[0]),
            _make_camera("right", calib.right, T_left_right, sensors[1],
                         _residual_right(calib.right, T_left_right, opt, rng["residual"]))]
    s_aps = rng["aps"]
    rig = describe_rig(calib, opt.sensor if calibration is None else "file")
    rig["rectification_residual"] = {"rows_px": opt.rectification_residual_px,
                                     "rotation_deg": opt.rectification_residual_deg}
    cameras = {c.name: {"threshold": round(c.sensor.params.threshold, 5), "latency_us": c.sensor.params.latency_us,
                        "hot_pixels": int(len(c.sensor.hot_pixels))} for c in cams}

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
        "rig_json": json.dumps(rig, sort_keys=True),
        "cameras_json": json.dumps(cameras, sort_keys=True),
        "randomized_json": json.dumps(randomized, sort_keys=True),
    }

    with MVSECWriter(out_dir / f"{name}_data.hdf5", out_dir / f"{name}_gt.hdf5", height, width, attrs,
                     compress_events=compress_events) as writer:
        for cam in cams:
            rad, cam.depth = render(scene.at(0.0), cam.raw, traj.pose(np.array([0.0]), cam.T_left_cam)[0])
            cam.sensor.start(cam.sensor.log(rad), 0)
        a = 0
        while a < total_us:
            b = min(a + chunk_us, total_us)
            lo_t = -1 if a == 0 else a  # streams sampled at t = 0 belong to the first chunk

            # Events: render often enough that image motion per step stays below max_step_px.
            motion = max(_image_motion(cam, *traj.pose(np.array([a / US, b / US]), cam.T_left_cam))
                         + _mover_motion(cam, scene.max_mover_speed, (b - a) / US) for cam in cams)
            n_steps = int(np.clip(np.ceil(motion / opt.max_step_px), 1, opt.max_steps_per_chunk))
            step_ts = a + np.round(np.arange(1, n_steps + 1) * (b - a) / n_steps).astype(np.int64)
            step_scenes = [scene.at(t / US) for t in step_ts]  # once per time, shared by both cameras
            for cam in cams:
                poses = traj.pose(step_ts / US, cam.T_left_cam)
                logs = np.empty((n_steps, height * width), np.float32)
                for k in range(n_steps):
                    rad, depth = render(step_scenes[k], cam.raw, poses[k])
                    logs[k] = cam.sensor.log(rad)
                cam.depth = depth
                x, y, t, p = cam.sensor.advance(logs, step_ts)
                writer.add_events(cam.name, x, y, _to_seconds(t), p)
                n_events[cam.name] += len(t)
            n_renders += n_steps

            # Ground truth depth, raw and rectified, for both cameras.
            ts = gt_ts[(gt_ts > lo_t) & (gt_ts <= b)]
            gt_scenes = [scene.at(t / US) for t in ts]
            for cam in cams:
                raw_d, rect_d = [], []
                for now, T in zip(gt_scenes, traj.pose(ts / US, cam.gt_T_left_cam)):
                    _, z = render(now, cam.gt_raw, T, with_radiance=False)
                    raw_d.append(np.where((z > 0) & (z <= opt.max_depth_m), z, np.nan).reshape(height, width))
                    # Z in the rectified frame: the rectified rays are in the raw frame, so rotate.
                    _, t_hit = render(now, cam.rect, T, with_radiance=False)
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
                aps_scenes = [scene.at(t / US) for t in ts]
                for cam in cams:
                    frames = [_aps_image(render(now, cam.raw, T)[0], (height, width), s_aps)
                              for now, T in zip(aps_scenes, traj.pose(ts / US, cam.T_left_cam))]
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
        for cam in cams:  # events that timestamp jitter held back at the end
            x, y, t, p = cam.sensor.flush()
            writer.add_events(cam.name, x, y, _to_seconds(t), p)
            n_events[cam.name] += len(t)
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
        "options": asdict(opt),
        "rig": rig,
        "cameras": cameras,
        "randomized": randomized,
        "wall_s": time.perf_counter() - wall0,
    }
