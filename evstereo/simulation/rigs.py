"""Sensor and stereo-rig presets of the simulator: sensor sizes, focal lengths and baselines.

Presets (``SENSORS``): ``dvs128`` 128x128, ``davis240`` 240x180, ``davis346`` 346x260 and
``dsec`` 640x480. The nominal ``davis346`` rig is the real MVSEC indoor_flying calibration
(fisheye lenses, rectified by the readers; :data:`DEFAULT_CALIBRATION`). Every other rig is an
ideal rectified pinhole pair built in code as a :class:`~evstereo.geometry.StereoCalibration`
(no distortion, R = I, the right camera ``baseline_m`` to the right of the left one), whose
camchain YAML loads back through :func:`~evstereo.geometry.load_camchain`.

Disparity is d = f * B / Z (f: rectified focal length in px, B: baseline in m, Z: depth in m).
The simulated rooms are seen at depths of about 0.6-10 m, so a rig's disparities span
fB / 10 .. fB / 0.6. A random rig (:func:`draw_rig`) takes the horizontal field of view
uniformly in 50-90 deg, f = (W / 2) / tan(hfov / 2), and the baseline log-uniformly inside the
preset's plausible range narrowed to keep fB in [4, 36] px*m: over all draws the disparities
go from 0.4 px (fB = 4 at 10 m) to 60 px (fB = 36 at 0.6 m); MVSEC's rig has fB = 19.9.
The ``dsec`` preset has DSEC's sensor and a DSEC-like lens but a short baseline (DSEC's real
0.6 m would give disparities of several hundred pixels in these rooms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evstereo.geometry import StereoCalibration, load_camchain

DEFAULT_CALIBRATION = Path(__file__).with_name("indoor_flying_camchain.yaml")
FOV_RANGE_DEG = (50.0, 90.0)  # horizontal field of view of random rigs
FB_RANGE = (4.0, 36.0)  # f * B of random rigs (px * m): see the module docstring
MVSEC_SHARE = 1 / 3  # random davis346 rigs that are the real (fisheye) MVSEC calibration


@dataclass(frozen=True)
class SensorPreset:
    """A sensor size with its nominal rig and the baselines that are plausible for it."""

    name: str
    width: int
    height: int
    focal_px: float  # nominal rectified focal length (px)
    baseline_m: float  # nominal baseline (m)
    baseline_range_m: tuple[float, float]  # random draws stay inside


# Nominal rigs give fB of about 17-21 px*m, like MVSEC (disparities about 2-35 px).
PRESETS: dict[str, SensorPreset] = {p.name: p for p in (
    SensorPreset("dvs128", 128, 128, 112.0, 0.15, (0.05, 0.30)),  # 40 um pixels, 4.5 mm lens
    SensorPreset("davis240", 240, 180, 200.0, 0.10, (0.03, 0.20)),
    SensorPreset("davis346", 346, 260, 199.653, 0.09988, (0.03, 0.15)),  # MVSEC's rectified f, B
    SensorPreset("dsec", 640, 480, 560.0, 0.036, (0.01, 0.08)),
)}
SENSORS = tuple(PRESETS)


def preset(name: str) -> SensorPreset:
    """The preset called ``name`` (ValueError naming the choices otherwise)."""
    if name not in PRESETS:
        raise ValueError(f"unknown sensor {name!r} (choose from {', '.join(SENSORS)} or random)")
    return PRESETS[name]


def focal_for_fov(width: int, hfov_deg: float) -> float:
    """Focal length (px) that gives a sensor ``width`` pixels wide this horizontal field of view."""
    return (width / 2) / math.tan(math.radians(hfov_deg) / 2)


def fov_of_focal(width: int, focal_px: float) -> float:
    """Horizontal field of view (deg) of a sensor ``width`` pixels wide at focal length ``focal_px``."""
    return math.degrees(2 * math.atan((width / 2) / focal_px))


def pinhole_rig(width: int, height: int, focal_px: float, baseline_m: float, source: str = "") -> StereoCalibration:
    """An ideal rectified pinhole pair: no distortion, R = I, the right camera ``baseline_m`` to the right."""
    if not (focal_px > 0 and baseline_m > 0):
        raise ValueError(f"focal length and baseline must be positive, not {focal_px} px and {baseline_m} m")
    calib = StereoCalibration.identity(height, width, fB=focal_px * baseline_m, focal=focal_px)
    T = np.eye(4)
    T[0, 3] = -baseline_m  # a left-camera point seen from the right camera lies B further left
    calib.T_right_left = T
    calib.source = source or f"pinhole {width}x{height} f={focal_px:.6g} px B={baseline_m:.6g} m"
    return calib


def build_rig(sensor: str, focal_px: float | None = None, baseline_m: float | None = None) -> StereoCalibration:
    """The rig of preset ``sensor``: its nominal focal length and baseline where None is given.

    ``davis346`` with neither given is the real MVSEC calibration; anything else a pinhole pair.
    """
    p = preset(sensor)
    if sensor == "davis346" and focal_px is None and baseline_m is None:
        return load_camchain(DEFAULT_CALIBRATION)
    f = p.focal_px if focal_px is None else float(focal_px)
    b = p.baseline_m if baseline_m is None else float(baseline_m)
    return pinhole_rig(p.width, p.height, f, b, source=f"{sensor} preset")


def draw_rig(rng: np.random.Generator, sensor: str) -> tuple[str, float | None, float | None]:
    """A random rig: ``(preset name, focal_px, baseline_m)``; ``sensor`` may be ``"random"``
    (a preset drawn uniformly). (davis346, None, None) means the MVSEC calibration.

    The draws are made in a fixed order whatever ``sensor`` is, so that naming the sensor
    changes nothing else that is drawn from ``rng``.
    """
    pick = SENSORS[int(rng.integers(len(SENSORS)))]
    name = pick if sensor == "random" else preset(sensor).name
    p = PRESETS[name]
    use_mvsec, u_fov, u_base = rng.random(3)
    if name == "davis346" and use_mvsec < MVSEC_SHARE:
        return name, None, None
    f = focal_for_fov(p.width, FOV_RANGE_DEG[0] + u_fov * (FOV_RANGE_DEG[1] - FOV_RANGE_DEG[0]))
    lo = max(p.baseline_range_m[0], FB_RANGE[0] / f)
    hi = min(p.baseline_range_m[1], FB_RANGE[1] / f)
    if lo > hi:  # cannot happen with the presets above; keep fB in range rather than B
        lo = hi = min(max(p.baseline_range_m[0], FB_RANGE[0] / f), FB_RANGE[1] / f)
    b = math.exp(math.log(lo) + u_base * (math.log(hi) - math.log(lo)))
    return name, round(f, 3), round(b, 5)


def describe_rig(calib: StereoCalibration, sensor: str) -> dict:
    """What a recording's rig is, for its metadata: sensor, size, f, B, fB, field of view, lens."""
    h, w = calib.size
    return {
        "sensor": sensor,
        "width": int(w),
        "height": int(h),
        "focal_px": round(calib.focal, 4),
        "baseline_m": round(calib.baseline, 6),
        "fB": round(calib.fB, 5),
        "hfov_deg": round(fov_of_focal(w, calib.focal), 2),  # of the rectified image
        "distortion_model": calib.left.distortion_model,
        "disparity_px_at_0.6_10m": [round(calib.fB / 0.6, 2), round(calib.fB / 10, 3)],
    }
