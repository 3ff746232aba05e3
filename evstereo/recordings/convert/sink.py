"""The output side of every converter: ``Sink`` wraps the atomic :class:`MVSECWriter`.

It checks coordinates against the sensor (inferring the smallest common sensor when none is
given, with a hint for 1-based or shifted pixels), counts events per camera, runs the
plausibility checks that need all events (``finish``), writes the calibration, removes stale
companion files of an earlier conversion into the same output, and returns the summary.
``write_sorted`` writes sorted arrays in chunks with a progress bar.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evstereo.errors import InputError
from evstereo.geometry import CAMERAS
from evstereo.recordings.convert.options import (MAX_ABS_SECONDS, TIME_UNITS, ConvertOptions, option_names,
                                                 to_seconds)
from evstereo.recordings.mvsec_writer import MVSECWriter, calibration_file, companion_paths
from evstereo.recordings.recording import plausibility_warnings

# Sensors tried, smallest first, when a text file's sensor size is not given.
KNOWN_SENSORS = (("DVS128", 128, 128), ("DAVIS240", 240, 180), ("DAVIS346", 346, 260),
                 ("VGA event camera", 640, 480), ("HD event camera", 1280, 720))


class Sink:
    """Wraps MVSECWriter: checks coordinates against the sensor, counts, summarises."""

    def __init__(self, fmt: str, inputs: list[Path], out: Path, gt: bool, sensor: tuple[int, int] | None,
                 sensor_source: str, opts: ConvertOptions):
        self.fmt, self.inputs, self.out, self.opts = fmt, inputs, out, opts
        self.name, self.gt_path, self.calib_dir = companion_paths(out)
        self.sensor = sensor  # (width, height) or None until inferred
        self.sensor_source = sensor_source
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.mono_hint = ""  # appended to the warning about a camera without events
        self.stats = {c: {"events": 0, "t_first_s": None, "t_last_s": None,
                          "x_min": None, "x_max": None, "y_min": None, "y_max": None, "source": None} for c in CAMERAS}
        self.images = self.imu = self.gt_frames = 0
        w, h = sensor if sensor is not None else (0, 0)
        attrs = {"source_format": fmt, "source": os.pathsep.join(str(p) for p in inputs), "converted_by": "evstereo.convert"}
        self.writer = MVSECWriter(out, self.gt_path if gt else None, height=h, width=w, attrs=attrs,
                                  compress_events=opts.compress_events)
        self.has_gt = gt
        self.calibration = None  # StereoCalibration to write next to the data

    # --- events -------------------------------------------------------------------------
    def check_coords(self, camera: str, x: np.ndarray, y: np.ndarray, source: Path, what: str = "") -> None:
        """Coordinates must be whole numbers inside the sensor (when known); track their range."""
        if len(x) == 0:
            return
        st = self.stats[camera]
        xmin, xmax, ymin, ymax = int(x.min()), int(x.max()), int(y.min()), int(y.max())
        st["x_min"] = xmin if st["x_min"] is None else min(st["x_min"], xmin)
        st["x_max"] = xmax if st["x_max"] is None else max(st["x_max"], xmax)
        st["y_min"] = ymin if st["y_min"] is None else min(st["y_min"], ymin)
        st["y_max"] = ymax if st["y_max"] is None else max(st["y_max"], ymax)
        st["source"] = st["source"] or source
        if self.sensor is not None:
            self._check_range(camera, source, xmin, xmax, ymin, ymax, what)

    def _one_based_likely(self, camera: str, xmax: int, ymax: int, w: int, h: int) -> bool:
        """Text input whose smallest coordinates so far are >= 1 and that fits the sensor once
        shifted by -1: a 1-based file (an offset from the data's minimum would misalign the
        cameras, since each camera's minimum differs)."""
        st = self.stats[camera]
        return (self.fmt == "text" and not self.opts.one_based
                and tuple(getattr(self.opts, f"{camera}_offset")) == (0, 0)
                and st["x_min"] is not None and st["x_min"] >= 1 and st["y_min"] >= 1
                and xmax - 1 < w and ymax - 1 < h)

    def _check_range(self, camera: str, source: Path, xmin: int, xmax: int, ymin: int, ymax: int, what: str = "") -> None:
        w, h = self.sensor
        if xmin >= 0 and ymin >= 0 and xmax < w and ymax < h:
            return
        if self._one_based_likely(camera, xmax, ymax, w, h):
            raise InputError(source, f"{camera} camera{what} has x in {xmin}..{xmax} and y in {ymin}..{ymax}, outside "
                                     f"the {w}x{h} sensor {self.sensor_source} (x 0..{w - 1}, y 0..{h - 1}); no "
                                     f"coordinate is 0, so the file is probably 1-based: pass --one-based (or give "
                                     f"the real sensor size with --sensor WIDTH HEIGHT)")
        hint = []
        for axis, lo, hi, size in (("x", xmin, xmax, w), ("y", ymin, ymax, h)):
            fits_shifted = hi - lo < size
            hint.append(-lo if (lo < 0 or hi >= size) and fits_shifted else 0)
        offset_opt = f"--{camera}-offset"
        if any(hint) and (camera == "left" or "right_offset" in option_names(self.fmt)):
            current = getattr(self.opts, f"{camera}_offset")
            suggest = f"{offset_opt} {current[0] + hint[0]} {current[1] + hint[1]}"
            advice = f"if its pixels are shifted, pass {suggest}, or give the real sensor size with --sensor WIDTH HEIGHT"
        else:
            advice = "give the real sensor size with --sensor WIDTH HEIGHT"
        raise InputError(source, f"{camera} camera{what} has x in {xmin}..{xmax} and y in {ymin}..{ymax}, outside the "
                                 f"{w}x{h} sensor {self.sensor_source} (x 0..{w - 1}, y 0..{h - 1}); {advice}")

    def add_events(self, camera: str, x, y, t_s, p, source: Path | None = None) -> None:
        if len(t_s) == 0:
            return
        far = np.flatnonzero(~(np.abs(t_s) <= MAX_ABS_SECONDS))
        if len(far):  # callers with line numbers check first; this is the backstop
            raise InputError(source or self.inputs[0],
                             f"{camera} event has time {float(t_s[far[0]]):.6g} s, beyond int64 microseconds "
                             f"(+-{MAX_ABS_SECONDS:.3g} s)" + (f"; is --time-unit {self.opts.time_unit} right?"
                                                               if "time_unit" in option_names(self.fmt) else ""))
        st = self.stats[camera]
        self.writer.add_events(camera, x, y, t_s, p)
        st["events"] += len(t_s)
        if st["t_first_s"] is None:
            st["t_first_s"] = float(t_s[0])
        st["t_last_s"] = float(t_s[-1])

    # --- finishing ----------------------------------------------------------------------
    def _infer_sensor(self) -> None:
        cams = [c for c in CAMERAS if self.stats[c]["events"] > 0]
        xmax = max(self.stats[c]["x_max"] for c in cams)
        ymax = max(self.stats[c]["y_max"] for c in cams)
        name, self.sensor = _smallest_sensor(xmax, ymax)
        if name:
            self.sensor_source = f"(inferred: the smallest common sensor, {name}, that holds x <= {xmax}, y <= {ymax})"
        else:
            self.sensor_source = f"(inferred from the largest coordinates x = {xmax}, y = {ymax})"
        if all(self._one_based_likely(c, xmax, ymax, *_smallest_sensor(xmax - 1, ymax - 1)[1]) for c in cams):
            name1, (w1, h1) = _smallest_sensor(xmax - 1, ymax - 1)
            if (w1, h1) != self.sensor:
                self.warnings.append(
                    f"{self.inputs[0]}: no event has x = 0 or y = 0 and x reaches {xmax}, y {ymax}: if the pixel "
                    f"coordinates start at 1, pass --one-based (the sensor would be {name1 or 'inferred as'} "
                    f"{w1}x{h1}, not {self.sensor[0]}x{self.sensor[1]})")
        for c in cams:
            st = self.stats[c]
            self._check_range(c, st["source"], st["x_min"], st["x_max"], st["y_min"], st["y_max"])
        self.notes.append(f"sensor size {self.sensor[0]}x{self.sensor[1]} {self.sensor_source}; "
                          "pass --sensor WIDTH HEIGHT if that is wrong")

    def finish(self) -> None:
        """Checks that need all events; runs inside the writer's context so a failure aborts."""
        if all(self.stats[c]["events"] == 0 for c in CAMERAS):
            raise InputError(self.inputs[0] if len(self.inputs) == 1 else None,
                             "holds no events" if len(self.inputs) == 1 else "the inputs hold no events")
        what = str(self.inputs[0]) if len(self.inputs) == 1 else " + ".join(str(p) for p in self.inputs)
        counts = {c: self.stats[c]["events"] for c in CAMERAS}
        ranges = {c: (self.stats[c]["t_first_s"] or 0.0, self.stats[c]["t_last_s"] or 0.0) for c in CAMERAS}
        if "time_unit" in option_names(self.fmt):
            others = [u for u in TIME_UNITS if u != self.opts.time_unit]
            others = ", ".join(others[:-1]) + " or " + others[-1]
            hint = (f"the timestamps were read as {self.opts.time_unit} (--time-unit {self.opts.time_unit}); "
                    f"if they are in another unit, pass --time-unit {others}")
        else:
            hint = "the file's timestamps look damaged"
        found = plausibility_warnings(what, counts, ranges, hint)
        if self.mono_hint:
            found = [w + self.mono_hint if "has no events" in w else w for w in found]
        self.warnings = found + self.warnings
        if self.sensor is None:
            self._infer_sensor()
        w, h = self.sensor
        self.writer.width, self.writer.height = w, h
        self.writer.data.attrs["sensor_width"] = w
        self.writer.data.attrs["sensor_height"] = h
        for c in CAMERAS:
            self.writer.ensure_events(c)  # an empty (0, 4) dataset, so readers find both cameras

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.writer.__exit__(exc_type, exc, tb)
        if exc_type is not None:
            return
        calib_path = calibration_file(self.calib_dir, self.name)
        if self.calibration is not None:
            try:
                self.calibration.to_camchain_yaml(calib_path)
            except OSError as exc:  # the message names the temporary; name the file the user asked for
                raise OSError(exc.errno, exc.strerror, str(calib_path)) from None
        self.removed = []
        if not self.has_gt and self.gt_path.is_file():
            self.gt_path.unlink()
            self.removed.append(str(self.gt_path))
        if self.calibration is None and calib_path.is_file():
            calib_path.unlink()
            self.removed.append(str(calib_path))
            try:
                self.calib_dir.rmdir()
            except OSError:
                pass
        if self.removed:
            self.notes.append("removed companion files left by an earlier conversion into the same output: "
                              + ", ".join(self.removed))

    def summary(self) -> dict:
        cams = {}
        for c in CAMERAS:
            st = self.stats[c]
            cams[c] = {"events": st["events"], "t_first_s": st["t_first_s"], "t_last_s": st["t_last_s"]}
        firsts = [v["t_first_s"] for v in cams.values() if v["events"]]
        lasts = [v["t_last_s"] for v in cams.values() if v["events"]]
        w, h = self.sensor
        return {
            "format": self.fmt,
            "inputs": [str(p) for p in self.inputs],
            "out": str(self.out),
            "gt": str(self.gt_path) if self.has_gt else None,
            "calibration": str(calibration_file(self.calib_dir, self.name)) if self.calibration is not None else None,
            "sensor": {"width": w, "height": h},
            "duration_s": (max(lasts) - min(firsts)) if firsts else 0.0,
            "cameras": cams,
            "images": self.images,
            "imu_samples": self.imu,
            "gt_frames": self.gt_frames,
            "notes": self.notes,
            "warnings": self.warnings,
        }


def _smallest_sensor(xmax: int, ymax: int) -> tuple[str, tuple[int, int]]:
    """(name, (width, height)) of the smallest common sensor holding x <= xmax, y <= ymax
    (name "" and the coordinates' own extent when none does)."""
    for name, w, h in KNOWN_SENSORS:
        if xmax < w and ymax < h:
            return name, (w, h)
    return "", (xmax + 1, ymax + 1)


def write_sorted(sink: Sink, cam: str, t, x, y, p, unit: str, opts: ConvertOptions) -> None:
    bar = opts.bar(len(t), f"writing {cam}", "ev")
    try:
        for s in range(0, len(t), opts.chunk):
            e = s + opts.chunk
            sink.add_events(cam, x[s:e], y[s:e], to_seconds(t[s:e], unit), p[s:e])
            bar.update(len(t[s:e]))
    finally:
        bar.close()
