"""Stereo evaluation recordings with known disparity, made from one real camera's events.

Real event data with stereo ground truth is scarce, so this builds it from what there is: the
events of one real camera (a DVS128, a DAVIS346 ...) become the left view, and a right view is
made by shifting every event left by a known disparity field ``d(x, y)`` (sub-pixel shifts by
stochastic rounding, so the mean shift is exact). Both views then look like two sensors rather
than one: each keeps its own random share of the events (``keep``) and gets its own background
noise, and the right view may carry a vertical offset (a rectification residual). What the
network sees is real event structure (real noise, real motion, real density); what is known
is the disparity.

The recording is written in the MVSEC layout with an identity (already rectified) calibration
of focal length ``focal_px`` and baseline ``baseline_m``, so depth = f*B / d. By default f*B is
the MVSEC rig's divided by the sensor's pixel-count scale (a rig of this size with MVSEC's
field of view and baseline), so the automatic input scale treats the pair like the sensor it
came from (:mod:`evstereo.datasets.scaling`). Ground truth is
given only at the pixels where the left view has events in the window before each GT time
(elsewhere NaN): the disparity of a pixel with no event is not observable, so metrics here are
"at the event pixels".
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evstereo.errors import InputError
from evstereo.events.arrays import Events
from evstereo.events.input_spec import DEFAULT_WINDOW_US
from evstereo.fileio import check_writable
from evstereo.geometry import NOMINAL_FB, StereoCalibration, auto_scale
from evstereo.recordings.mvsec_writer import MVSECWriter, calibration_file
from evstereo.recordings.recording import open_recording

FIELDS = ("constant", "plane", "layers")


@dataclass(frozen=True)
class PairOptions:
    """How the second view is made; the defaults are the issue's two-sensor realism."""

    field: str = "plane"  # constant: d = d_min; plane: d_min..d_max slanted; layers: a nearer centre band
    d_min: float = 4.0  # px
    d_max: float = 16.0  # px
    keep: float = 0.6  # share of the events each camera keeps, independently
    noise_rate_hz: float = 0.05  # extra background events per pixel per second, per camera (the source has its own)
    vertical_offset_px: float = 0.0  # right view moved down by this much (rectification residual)
    gt_hz: float = 20.0
    window_us: int = DEFAULT_WINDOW_US  # GT pixels: left events within this window before the GT time
    focal_px: float | None = None  # default: the sensor width
    baseline_m: float | None = None  # default: f*B = NOMINAL_FB / the pixel-count scale (see above)

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"field must be one of {', '.join(FIELDS)}, not {self.field!r}")
        if not 0 <= self.d_min <= self.d_max:
            raise ValueError(f"need 0 <= d_min <= d_max, not {self.d_min}, {self.d_max}")
        if not 0 < self.keep <= 1:
            raise ValueError(f"keep must be in (0, 1], not {self.keep}")
        if self.noise_rate_hz < 0 or self.gt_hz <= 0 or self.window_us <= 0 or \
                (self.baseline_m is not None and self.baseline_m <= 0):
            raise ValueError("noise rate must be >= 0; gt_hz, window_us and baseline_m positive")


def disparity_field(opts: PairOptions, height: int, width: int) -> np.ndarray:
    """The known disparity (px) of every left pixel, float32 (H, W)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    lo, hi = opts.d_min, opts.d_max
    if opts.field == "constant":
        return np.full((height, width), lo, np.float32)
    if opts.field == "plane":  # a slanted plane: nearer to the right and the bottom
        return (lo + (hi - lo) * (0.6 * x / max(width - 1, 1) + 0.4 * y / max(height - 1, 1))).astype(np.float32)
    # layers: background at d_min, a vertical band through the middle at d_max (an occluding object)
    band = np.abs(x - 0.5 * (width - 1)) < 0.2 * width
    return np.where(band, hi, lo).astype(np.float32)


def _subset(ev: Events, keep: float, rng: np.random.Generator) -> Events:
    return ev if keep >= 1 else ev[rng.random(len(ev)) < keep]


def _noise(n_pix_s: float, height: int, width: int, t0: int, t1: int, rate_hz: float,
           rng: np.random.Generator) -> Events:
    n = int(rng.poisson(rate_hz * n_pix_s)) if rate_hz > 0 else 0
    return Events.create(rng.integers(0, width, n), rng.integers(0, height, n),
                         np.sort(rng.integers(t0, t1 + 1, n)), rng.integers(0, 2, n))


def _merge(a: Events, b: Events) -> Events:
    both = Events.concatenate([a, b])
    return both[np.argsort(both.t, kind="stable")]


def make_pair(source: Events, height: int, width: int, opts: PairOptions,
              rng: np.random.Generator) -> tuple[Events, Events, np.ndarray]:
    """(left, right, disparity field) from one camera's events."""
    disp = disparity_field(opts, height, width)
    left = _subset(source, opts.keep, rng)
    right = _subset(source, opts.keep, rng)
    d = disp[right.y.astype(np.int64), right.x.astype(np.int64)]
    xr = np.floor(right.x - d + rng.random(len(right))).astype(np.int64)  # stochastic rounding
    yr = np.floor(right.y + opts.vertical_offset_px + rng.random(len(right))).astype(np.int64) \
        if opts.vertical_offset_px else right.y.astype(np.int64)
    inside = (xr >= 0) & (xr < width) & (yr >= 0) & (yr < height)
    right = Events.create(xr[inside], yr[inside], right.t[inside], right.p[inside])
    if len(source):
        t0, t1 = int(source.t[0]), int(source.t[-1])
        span_s = (t1 - t0) * 1e-6 * height * width
        left = _merge(left, _noise(span_s, height, width, t0, t1, opts.noise_rate_hz, rng))
        right = _merge(right, _noise(span_s, height, width, t0, t1, opts.noise_rate_hz, rng))
    return left, right, disp


def write_pair(source_path: str | os.PathLike, out_dir: str | os.PathLike, name: str, camera: str = "left",
               seed: int = 0, **options) -> dict:
    """Read ``camera``'s events of any recording the readers open, write ``out_dir/NAME_data.hdf5``,
    ``NAME_gt.hdf5`` and ``NAME_calib/``; returns a summary."""
    opts = PairOptions(**options)
    if camera not in ("left", "right"):
        raise ValueError(f"camera must be left or right, not {camera!r}")
    out_dir = Path(out_dir)
    check_writable(out_dir, folder=True)
    with open_recording(source_path) as rec:
        t0, t1 = rec.time_range(camera)
        source = rec.events(camera, t0 - 1, t1)
        height, width = rec.height, rec.width
    if len(source) == 0:
        raise InputError(source_path, f"has no {camera} events to build a pair from")
    rng = np.random.default_rng(seed)
    left, right, disp = make_pair(source, height, width, opts, rng)
    focal = float(opts.focal_px or width)
    fB = focal * opts.baseline_m if opts.baseline_m else NOMINAL_FB / auto_scale(height, width)
    calib = StereoCalibration.identity(height, width, fB=fB, focal=focal)
    depth_field = (fB / np.maximum(disp, 1e-6)).astype(np.float32)

    period = int(round(1e6 / opts.gt_hz))
    gt_ts = np.arange(int(source.t[0]) + opts.window_us, int(source.t[-1]) + 1, period, dtype=np.int64)
    # GT where the left view saw an event in the window, and the matching right pixel is inside.
    x_right = np.arange(width)[None, :] - disp
    inside = (x_right >= 0) & (disp > 0)
    depths = []
    for t in gt_ts:
        w = left.window(int(t) - opts.window_us, int(t))
        seen = np.zeros((height, width), bool)
        seen[w.y.astype(np.int64), w.x.astype(np.int64)] = True
        depths.append(np.where(seen & inside, depth_field, np.nan).astype(np.float32))
    attrs = {"generator": "evstereo.recordings.real_pair", "source": str(source_path), "source_camera": camera,
             "seed": int(seed), "options_json": json.dumps(asdict(opts), sort_keys=True)}
    data_path, gt_path = out_dir / f"{name}_data.hdf5", out_dir / f"{name}_gt.hdf5"
    calib_path = calibration_file(out_dir / f"{name}_calib", name)
    with MVSECWriter(data_path, gt_path, height, width, attrs) as writer:
        for cam, ev in (("left", left), ("right", right)):
            writer.add_events(cam, ev.x, ev.y, ev.t * 1e-6, ev.p)
        if len(gt_ts):
            d = np.stack(depths)
            writer.add_depth("left", "rect", d, gt_ts * 1e-6)
            writer.add_depth("left", "raw", d, gt_ts * 1e-6)
        calib.to_camchain_yaml(calib_path)
    return {"data": str(data_path), "gt": str(gt_path), "calibration": str(calib_path),
            "source_events": int(len(source)), "events": {"left": int(len(left)), "right": int(len(right))},
            "gt_frames": int(len(gt_ts)), "sensor": [height, width],
            "disparity_px": [float(disp.min()), float(disp.max())], "options": asdict(opts)}
