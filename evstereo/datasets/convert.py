"""Convert real event recordings into MVSEC-layout HDF5 files (``data_tools.convert`` is the CLI).

Formats:

``text``    lines ``t x y p [camera]`` (whitespace or comma separated, ``#`` comments), either
            one file with a camera column (0/1 or left/right; ``left_camera`` says which id is
            the left camera), one file without it (left camera only), or two files (left, then
            right). Read in chunks, never whole.
``npz``     arrays ``left`` and ``right``, each (N, 4) = t [us], x, y, p (0/1), as in the
            SpikingStereoMatching DVS128 recordings (128x128 unless ``sensor`` says otherwise).
``aedat4``  a DV/AEDAT4 file (``aedat`` package): its event stream, frames (image_raw) and IMU
            go to the left camera; the right camera gets an empty event dataset.
``dsec``    a DSEC sequence folder: events rectified with DSEC's maps (the output needs no
            rectification), disparity GT as depth_image_rect = fB / d, and a camchain file of
            the rectified pair (distortion 'none', R = I, P with f and fB).

Output: ``OUT`` (events, frames, IMU; times in seconds float64, p +-1), plus the companion
``NAME_gt.hdf5`` when there is ground truth and ``NAME_calib/camchain-imucam-NAME.yaml`` when
there is a calibration (see ``companion_paths``). Everything is written under temporary names
and renamed at the end: an error or Ctrl-C leaves no file under the final names, and existing
files stay untouched. Companion files left over from an earlier conversion into the same
``OUT`` that this conversion does not produce are removed after success, so the set stays
consistent. Bad input raises ``InputError`` with one sentence naming the file; an output
folder that is read-only or full fails before any input is read (``OSError`` naming it).

Input that converts but is most likely misread gives a :class:`ConvertWarning` (also listed
in the summary's ``warnings``): a camera without events (mono input), events spanning more
than a day or at an impossible rate (timestamps in another unit than ``time_unit``, or one
far outlying timestamp). Timestamps that do not fit int64 microseconds are an InputError.
"""

from __future__ import annotations

import io
import itertools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from evstereo.datasets.mvsec_writer import MVSECWriter, calibration_file, companion_paths
from evstereo.datasets.recording import plausibility_warnings
from evstereo.errors import InputError
from evstereo.events.time_index import MAX_ABS_US
from evstereo.fileio import check_writable
from evstereo.geometry import CAMERAS

FORMATS = ("text", "npz", "aedat4", "dsec")
TIME_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}  # ticks per second
DEFAULT_TIME_UNIT = {"text": "s", "npz": "us"}
NPZ_DEFAULT_SENSOR = (128, 128)  # (width, height): DVS128
# Sensors tried, smallest first, when a text file's sensor size is not given.
KNOWN_SENSORS = (("DVS128", 128, 128), ("DAVIS240", 240, 180), ("DAVIS346", 346, 260),
                 ("VGA event camera", 640, 480), ("HD event camera", 1280, 720))
STANDARD_GRAVITY = 9.80665
MAX_ABS_SECONDS = MAX_ABS_US / 1e6  # timestamps beyond this overflow the readers' int64 microseconds


class ConvertWarning(UserWarning):
    """The input converted, but is most likely misread (see the module doc)."""


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


ProgressFactory = Callable[..., object]  # called as factory(total=..., desc=..., unit=...); object has update/close


@dataclass
class ConvertOptions:
    """Options of ``convert``; each applies to the formats listed."""

    time_unit: str | None = None  # text (default s), npz (default us)
    one_based: bool = False  # text: coordinates start at 1
    left_camera: int = 0  # text with a camera column: the id (0 or 1) of the left camera
    sensor: tuple[int, int] | None = None  # (width, height): text, npz, aedat4
    left_offset: tuple[int, int] = (0, 0)  # (dx, dy) added to left coordinates: text, npz, aedat4
    right_offset: tuple[int, int] = (0, 0)  # same for the right camera: text, npz
    sort: bool = False  # sort unsorted input in memory instead of refusing it: text, npz, aedat4
    frames: bool = True  # aedat4: write APS frames as image_raw
    imu: bool = True  # aedat4: write IMU samples
    compress_events: bool | None = None  # all formats: Blosc-compressed events (None: the writer's default)
    chunk: int = 1 << 18  # events (or text lines) per chunk
    progress: ProgressFactory | None = None  # e.g. tqdm.tqdm

    def bar(self, total: int | None, desc: str, unit: str):
        if self.progress is None:
            return _NoProgress()
        return self.progress(total=total, desc=desc, unit=unit, unit_scale=True, leave=False)


_APPLIES = {
    "time_unit": ("text", "npz"),
    "one_based": ("text",),
    "left_camera": ("text",),
    "sensor": ("text", "npz", "aedat4"),
    "left_offset": ("text", "npz", "aedat4"),
    "right_offset": ("text", "npz"),
    "sort": ("text", "npz", "aedat4"),
    "frames": ("aedat4",),
    "imu": ("aedat4",),
}
_DEFAULTS = ConvertOptions()


def _flag(name: str) -> str:
    if name in ("frames", "imu"):
        return f"--no-{name}"
    return "--" + name.replace("_", "-")


def _make_options(fmt: str, options: dict) -> ConvertOptions:
    known = set(ConvertOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"convert() got unknown options {unknown}")
    opts = ConvertOptions(**options)
    for name, formats in _APPLIES.items():
        if fmt not in formats and getattr(opts, name) != getattr(_DEFAULTS, name):
            raise InputError(None, f"option {_flag(name)} does not apply to the {fmt} format "
                                   f"(only to {', '.join(formats)})")
    if opts.time_unit is None:
        opts.time_unit = DEFAULT_TIME_UNIT.get(fmt, "us")
    if opts.time_unit not in TIME_UNITS:
        raise InputError(None, f"time unit must be one of {', '.join(TIME_UNITS)}, not {opts.time_unit!r}")
    if opts.sensor is not None:
        w, h = (int(v) for v in opts.sensor)
        if w <= 0 or h <= 0 or w > 32767 or h > 32767:
            raise InputError(None, f"sensor size must be positive WIDTH HEIGHT, not {w} {h}")
        opts.sensor = (w, h)
    opts.left_offset = tuple(int(v) for v in opts.left_offset)
    opts.right_offset = tuple(int(v) for v in opts.right_offset)
    if len(opts.left_offset) != 2 or len(opts.right_offset) != 2:
        raise InputError(None, "pixel offsets are two integers DX DY")
    if opts.left_camera not in (0, 1):
        raise InputError(None, f"--left-camera must be 0 or 1 (the camera column's id of the left camera), "
                               f"not {opts.left_camera!r}")
    opts.chunk = max(1, int(opts.chunk))
    return opts


# ======================================================================================
# the output sink: counts, coordinate checks and the atomic MVSEC writer
# ======================================================================================
class _Sink:
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
        if any(hint) and (camera == "left" or "right_offset" in _option_names(self.fmt)):
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
                                                               if "time_unit" in _option_names(self.fmt) else ""))
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
        if "time_unit" in _option_names(self.fmt):
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

    def __enter__(self) -> "_Sink":
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


def _option_names(fmt: str) -> set[str]:
    return {name for name, formats in _APPLIES.items() if fmt in formats}


def _first_unsorted(t: np.ndarray) -> int | None:
    """Index of the first element smaller than the one before it, or None."""
    bad = np.flatnonzero(np.diff(t) < 0)
    return int(bad[0]) + 1 if len(bad) else None


def _polarity_ok(p: np.ndarray) -> np.ndarray:
    return (p == 0) | (p == 1) | (p == -1)


def _to_seconds(t: np.ndarray, unit: str) -> np.ndarray:
    return np.asarray(t, np.float64) / float(TIME_UNITS[unit])


# ======================================================================================
# text
# ======================================================================================
# Camera words become codes that no numeric id uses, so they keep their meaning whatever
# --left-camera says about the ids 0 and 1.
_CAMERA_WORDS = (("left", "-10"), ("right", "-11"))
_LEFT_WORD, _RIGHT_WORD = -10, -11


def _clean_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").replace(",", " ").replace("\t", " ").lower()
    for word, digit in _CAMERA_WORDS:
        text = text.replace(word, digit)
    return text


def _data_lines(lines: list[bytes], first_line: int) -> Iterator[tuple[int, bytes, list[str]]]:
    """(line number, raw line, tokens) of the lines that hold data."""
    for i, raw in enumerate(lines):
        body = raw.split(b"#", 1)[0].replace(b",", b" ").strip()
        if body:
            yield first_line + i, raw, body.decode("utf-8", errors="replace").split()


def _show(raw: bytes) -> str:
    s = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    return repr(s if len(s) <= 60 else s[:57] + "...")


def _diagnose_text(path: Path, lines: list[bytes], first_line: int, ncols: int) -> InputError:
    """Find the first line that cannot be parsed and describe it."""
    layout = "t x y p camera" if ncols == 5 else "t x y p"
    for lineno, raw, tokens in _data_lines(lines, first_line):
        if len(tokens) != ncols:
            return InputError(path, f"line {lineno} {_show(raw)} has {len(tokens)} columns, expected {ncols} ({layout})")
        try:
            [float(v) for v in tokens[:4]]
        except ValueError:
            return InputError(path, f"line {lineno} {_show(raw)} is not a number line '{layout}'")
        if ncols == 5 and tokens[4].lower() not in ("0", "1", "left", "right", "0.0", "1.0", "-10", "-11"):
            return InputError(path, f"line {lineno} {_show(raw)} has camera {tokens[4]!r}; use 0/1 or left/right")
    return InputError(path, f"lines {first_line}..{first_line + len(lines) - 1} cannot be read as '{layout}'")


def _line_of_row(lines: list[bytes], first_line: int, row: int) -> tuple[int, bytes]:
    return next(itertools.islice(((n, raw) for n, raw, _ in _data_lines(lines, first_line)), row, None))


def _parse_text_chunk(path: Path, lines: list[bytes], first_line: int, ncols: int, unit: str) -> np.ndarray:
    text = _clean_text(b"".join(lines))
    names = ["t", "x", "y", "p", "c"][:ncols]
    tdtypes = ("i8", "f8") if unit in ("us", "ns") else ("f8",)
    for tdt in tdtypes:
        dtype = [(n, tdt if n == "t" else "f8") for n in names]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return np.loadtxt(io.StringIO(text), dtype=dtype, comments="#", ndmin=1)
        except ValueError:
            continue
    raise _diagnose_text(path, lines, first_line, ncols) from None


def _count_columns(path: Path) -> int:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            body = raw.split(b"#", 1)[0].replace(b",", b" ").split()
            if body:
                if len(body) not in (4, 5):
                    raise InputError(path, f"line {lineno} {_show(raw)} has {len(body)} columns; "
                                           "expected 't x y p' or 't x y p camera'")
                return len(body)
    return 4


def _iter_text(path: Path, ncols: int, opts: ConvertOptions) -> Iterator[tuple[np.ndarray, list[bytes], int]]:
    """Parsed chunks of a text file: (structured array, its lines, first line number)."""
    bar = opts.bar(path.stat().st_size, f"reading {path.name}", "B")
    try:
        with open(path, "rb") as f:
            first = 1
            while True:
                lines = list(itertools.islice(f, opts.chunk))
                if not lines:
                    break
                arr = _parse_text_chunk(path, lines, first, ncols, opts.time_unit)
                yield arr, lines, first
                bar.update(sum(len(v) for v in lines))
                first += len(lines)
    finally:
        bar.close()


def _convert_text(inputs: list[Path], out: Path, opts: ConvertOptions) -> dict:
    if len(inputs) not in (1, 2):
        raise InputError(None, f"the text format takes one file (with a camera column) or two files "
                               f"(left, then right), not {len(inputs)}")
    if len(inputs) == 2:
        jobs = [(inputs[0], 4, "left"), (inputs[1], 4, "right")]
    else:
        ncols = _count_columns(inputs[0])
        jobs = [(inputs[0], ncols, None if ncols == 5 else "left")]
    unit = opts.time_unit
    sink = _Sink("text", inputs, out, gt=False, sensor=opts.sensor,
                 sensor_source="given with --sensor" if opts.sensor else "", opts=opts)
    with sink:
        for path, ncols, fixed_cam in jobs:
            if len(inputs) == 2:
                n = _count_columns(path)
                if n != 4:
                    raise InputError(path, f"has {n} columns; with two files (left, then right) each line is 't x y p'")
            # per camera: (last t written, lines of its chunk, first line number, row) for messages
            last: dict[str, tuple | None] = {c: None for c in CAMERAS}
            held = {c: [] for c in CAMERAS}  # --sort: everything is kept and sorted at the end
            for arr, lines, first in _iter_text(path, ncols, opts):
                if len(arr) == 0:
                    continue
                t = arr["t"]
                x, y, p = arr["x"], arr["y"], arr["p"]
                if opts.one_based:
                    x, y = x - 1, y - 1
                t_s_all = _to_seconds(t, unit)
                for bad_rows, problem in (
                    (~np.isfinite(t.astype(np.float64)), "the time is not a finite number"),
                    (~(np.abs(t_s_all) <= MAX_ABS_SECONDS),
                     f"the time ({unit}) is beyond int64 microseconds (+-{MAX_ABS_SECONDS:.3g} s); is --time-unit "
                     f"{unit} right?"),
                    ((x != np.floor(x)) | (y != np.floor(y)), "pixel coordinates must be whole numbers"),
                    (~_polarity_ok(p), "polarity must be 0/1 or -1/+1"),
                ):
                    bad = np.flatnonzero(bad_rows)
                    if len(bad):
                        lineno, raw = _line_of_row(lines, first, int(bad[0]))
                        raise InputError(path, f"line {lineno} {_show(raw)}: {problem}")
                if fixed_cam is None:
                    c = arr["c"]
                    badc = np.flatnonzero((c != 0) & (c != 1) & (c != _LEFT_WORD) & (c != _RIGHT_WORD))
                    if len(badc):
                        lineno, raw = _line_of_row(lines, first, int(badc[0]))
                        raise InputError(path, f"line {lineno} {_show(raw)} has camera {c[badc[0]]:g}; "
                                               "use 0/1 or left/right")
                    left_id = opts.left_camera
                    parts = [("left", np.flatnonzero((c == left_id) | (c == _LEFT_WORD))),
                             ("right", np.flatnonzero((c == 1 - left_id) | (c == _RIGHT_WORD)))]
                else:
                    parts = [(fixed_cam, np.arange(len(t)))]
                for cam, rows in parts:
                    if len(rows) == 0:
                        continue
                    tc, xc, yc, pc = t[rows], x[rows], y[rows], p[rows]
                    dx, dy = getattr(opts, f"{cam}_offset")
                    xc, yc = xc.astype(np.int64) + dx, yc.astype(np.int64) + dy
                    where = f" (lines {first}..{first + len(lines) - 1})" if opts.sensor else ""
                    sink.check_coords(cam, xc, yc, path, where)
                    if opts.sort:
                        held[cam].append((tc, xc, yc, pc))
                        continue
                    i = _first_unsorted(tc)
                    prev = last[cam]
                    if prev is not None and tc[0] < prev[0]:
                        i = 0
                    if i is not None:
                        lineno, raw = _line_of_row(lines, first, int(rows[i]))
                        if i == 0:
                            before = _line_of_row(prev[1], prev[2], prev[3])[0]
                        else:
                            before = _line_of_row(lines, first, int(rows[i - 1]))[0]
                        raise InputError(path, f"timestamps are not sorted: line {lineno} {_show(raw)} is earlier than "
                                               f"line {before} of the {cam} camera; pass --sort to sort them in memory")
                    last[cam] = (tc[-1], lines, first, int(rows[-1]))
                    sink.add_events(cam, xc, yc, t_s_all[rows], pc, path)
            for cam in CAMERAS:
                if held[cam]:
                    tc, xc, yc, pc = (np.concatenate([h[k] for h in held[cam]]) for k in range(4))
                    order = np.argsort(tc, kind="stable")
                    _write_sorted(sink, cam, tc[order], xc[order], yc[order], pc[order], unit, opts)
        if len(jobs) == 1 and jobs[0][2] == "left":
            sink.notes.append("the input has no camera column: all events went to the left camera; "
                              "the right camera's event dataset is empty")
            sink.mono_hint = (" (the file has no camera column: give a fifth column 0/1 or left/right, or two "
                              "files, left then right)")
        elif len(jobs) == 1:
            only = "left" if sink.stats["left"]["events"] else "right"
            sink.mono_hint = f" (every line's camera column names the {only} camera)"
        sink.finish()
    return sink.summary()


def _write_sorted(sink: _Sink, cam: str, t, x, y, p, unit: str, opts: ConvertOptions) -> None:
    bar = opts.bar(len(t), f"writing {cam}", "ev")
    try:
        for s in range(0, len(t), opts.chunk):
            e = s + opts.chunk
            sink.add_events(cam, x[s:e], y[s:e], _to_seconds(t[s:e], unit), p[s:e])
            bar.update(len(t[s:e]))
    finally:
        bar.close()


# ======================================================================================
# npz
# ======================================================================================
def _load_npz_camera(path: Path, npz, key: str) -> np.ndarray:
    if key not in npz.files:
        raise InputError(path, f"has no array '{key}' (expected arrays 'left' and 'right', each (N, 4) = t, x, y, p); "
                               f"found {sorted(npz.files)}")
    try:
        arr = npz[key]
    except Exception as exc:  # zlib.error, BadZipFile, ValueError, OSError: a damaged archive
        raise InputError(path, f"array '{key}' cannot be read (truncated or corrupt file?): {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(path, f"array '{key}' has shape {arr.shape}, expected (N, 4) = t, x, y, p")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(path, f"array '{key}' has dtype {arr.dtype}, expected numbers")
    return arr


def _convert_npz(inputs: list[Path], out: Path, opts: ConvertOptions) -> dict:
    if len(inputs) != 1:
        raise InputError(None, f"the npz format takes one file, not {len(inputs)}")
    path = inputs[0]
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise InputError(path, "is a single .npy array, not an .npz archive with arrays 'left' and 'right'")
    if not magic.startswith(b"PK"):
        raise InputError(path, "is not an .npz archive (a zip of .npy arrays 'left' and 'right')")
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as exc:  # BadZipFile, OSError, EOFError, ValueError: a damaged archive
        raise InputError(path, f"is not a readable .npz archive (truncated or corrupt?): {exc}") from None
    with npz:
        arrays = {c: _load_npz_camera(path, npz, c) for c in CAMERAS}
    sensor = opts.sensor or NPZ_DEFAULT_SENSOR
    source = "given with --sensor" if opts.sensor else "assumed for npz input (DVS128)"
    unit = opts.time_unit
    with _Sink("npz", inputs, out, gt=False, sensor=sensor, sensor_source=source, opts=opts) as sink:
        for cam in CAMERAS:
            a = arrays[cam]
            t, x, y, p = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
            if len(a) == 0:
                continue
            if not np.issubdtype(a.dtype, np.integer):
                bad = np.flatnonzero((x != np.floor(x)) | (y != np.floor(y)))
                if len(bad):
                    raise InputError(path, f"{cam} event {int(bad[0])} has a coordinate that is not a whole pixel number")
            bad = np.flatnonzero(~_polarity_ok(p))
            if len(bad):
                raise InputError(path, f"{cam} event {int(bad[0])} has polarity {p[bad[0]]}; expected 0/1 or -1/+1")
            bad = np.flatnonzero(~np.isfinite(t.astype(np.float64)))
            if len(bad):
                raise InputError(path, f"{cam} event {int(bad[0])} has time {t[bad[0]]}, not a finite number")
            dx, dy = getattr(opts, f"{cam}_offset")
            x, y = x.astype(np.int64) + dx, y.astype(np.int64) + dy
            sink.check_coords(cam, x, y, path)
            i = _first_unsorted(t)
            if i is not None:
                if not opts.sort:
                    raise InputError(path, f"timestamps of the {cam} camera are not sorted: event {i} (t={t[i]}) is "
                                           f"earlier than event {i - 1} (t={t[i - 1]}); pass --sort to sort them")
                order = np.argsort(t, kind="stable")
                t, x, y, p = t[order], x[order], y[order], p[order]
            _write_sorted(sink, cam, t, x, y, p, unit, opts)
        sink.finish()
    return sink.summary()


# ======================================================================================
# aedat4
# ======================================================================================
def _frame_to_gray(frame: dict) -> np.ndarray | None:
    import cv2

    px = np.asarray(frame["pixels"])
    fmt = frame.get("format")
    if fmt == "I;16" or px.dtype == np.uint16:
        px = (px >> 8).astype(np.uint8)
    if px.ndim == 3:
        code = cv2.COLOR_RGBA2GRAY if px.shape[2] == 4 else cv2.COLOR_RGB2GRAY
        px = cv2.cvtColor(px, code)
    return px.astype(np.uint8, copy=False)


def _convert_aedat4(inputs: list[Path], out: Path, opts: ConvertOptions) -> dict:
    if len(inputs) != 1:
        raise InputError(None, f"the aedat4 format takes one file, not {len(inputs)}")
    path = inputs[0]
    try:
        import aedat
    except ImportError:
        raise InputError(path, "needs the 'aedat' package to be read (pip install aedat)") from None
    try:
        decoder = aedat.Decoder(str(path))
        streams = decoder.id_to_stream()
    except Exception as exc:
        raise InputError(path, f"is not a readable AEDAT4 file (truncated or corrupt?): {exc}") from None
    ev_ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
    if not ev_ids:
        raise InputError(path, "holds no event stream")
    ev_id = ev_ids[0]
    if opts.sensor:
        sensor, source = opts.sensor, "given with --sensor"
    else:
        s = streams[ev_id]
        sensor, source = (int(s["width"]), int(s["height"])), "of the file's event stream"
    frame_ids = [i for i, s in streams.items() if s.get("type") == "frame"]
    imu_ids = [i for i, s in streams.items() if s.get("type") == "imus"]
    dx, dy = opts.left_offset
    with _Sink("aedat4", inputs, out, gt=False, sensor=sensor, sensor_source=source, opts=opts) as sink:
        if len(ev_ids) > 1:
            sink.notes.append(f"the file has {len(ev_ids)} event streams; only stream {ev_id} was converted")
        sink.notes.append("AEDAT4 holds one camera: its events, frames and IMU went to the left camera; "
                          "the right camera's event dataset is empty")
        sink.mono_hint = " (an AEDAT4 file holds one camera)"
        buf: list[np.ndarray] = []
        held: list[np.ndarray] = []
        buffered = 0
        count = 0
        last_t = None
        skipped_frames = 0
        bar = opts.bar(None, f"reading {path.name}", "ev")

        def flush() -> None:
            nonlocal buf, buffered
            if not buf:
                return
            ev = np.concatenate(buf)
            buf, buffered = [], 0
            x, y = ev["x"].astype(np.int64) + dx, ev["y"].astype(np.int64) + dy
            sink.check_coords("left", x, y, path)
            sink.add_events("left", x, y, ev["t"].astype(np.float64) / 1e6, ev["on"].astype(np.int8))

        try:
            for packet in decoder:
                sid = packet["stream_id"]
                if "events" in packet and sid == ev_id:
                    ev = packet["events"]
                    if len(ev) == 0:
                        continue
                    t = ev["t"].astype(np.int64)
                    i = _first_unsorted(t)
                    if last_t is not None and t[0] < last_t:
                        i = 0
                    if i is not None and not opts.sort:
                        raise InputError(path, f"event timestamps are not sorted: event {count + i} (t={int(t[i])} us) is "
                                               "earlier than the one before it; pass --sort to sort them in memory")
                    last_t = int(t[-1]) if last_t is None else max(last_t, int(t[-1]))
                    count += len(ev)
                    bar.update(len(ev))
                    if opts.sort:
                        held.append(ev)
                        continue
                    buf.append(ev)
                    buffered += len(ev)
                    if buffered >= opts.chunk:
                        flush()
                elif "frame" in packet and opts.frames and sid == (frame_ids[0] if frame_ids else None):
                    frame = packet["frame"]
                    img = _frame_to_gray(frame)
                    if img.shape != (sensor[1], sensor[0]):
                        skipped_frames += 1
                        continue
                    sink.writer.add_images("left", img[None], np.array([frame["t"] / 1e6]))
                    sink.images += 1
                elif "imus" in packet and opts.imu and sid == (imu_ids[0] if imu_ids else None):
                    imu = packet["imus"]
                    rows = np.stack([imu["accelerometer_x"], imu["accelerometer_y"], imu["accelerometer_z"],
                                     imu["gyroscope_x"], imu["gyroscope_y"], imu["gyroscope_z"]], 1).astype(np.float64)
                    rows[:, :3] *= STANDARD_GRAVITY  # g -> m/s^2 (ROS sensor_msgs/Imu, as in MVSEC)
                    rows[:, 3:] = np.deg2rad(rows[:, 3:])  # deg/s -> rad/s
                    sink.writer.add_imu("left", rows, imu["t"].astype(np.float64) / 1e6)
                    sink.imu += len(imu)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(path, f"cannot be decoded past event {count} (truncated or corrupt?): {exc}") from None
        finally:
            bar.close()
        if held:
            ev = np.concatenate(held)
            ev = ev[np.argsort(ev["t"], kind="stable")]
            for s in range(0, len(ev), opts.chunk):
                buf.append(ev[s : s + opts.chunk])
                flush()
        flush()
        if skipped_frames:
            sink.notes.append(f"{skipped_frames} frames whose size differs from the sensor were skipped")
        if sink.images:
            sink.notes.append(f"{sink.images} APS frames written to davis/left/image_raw")
        if sink.imu:
            sink.notes.append(f"{sink.imu} IMU samples written to davis/left/imu (m/s^2, rad/s)")
        sink.finish()
    decoder = None
    return sink.summary()


# ======================================================================================
# DSEC
# ======================================================================================
def _convert_dsec(inputs: list[Path], out: Path, opts: ConvertOptions) -> dict:
    from evstereo.datasets.dsec import DSECRecording

    if len(inputs) != 1:
        raise InputError(None, f"the dsec format takes one sequence folder, not {len(inputs)}")
    with DSECRecording(inputs[0]) as rec:
        has_gt = rec.has_gt
        if has_gt and rec.fB is None:
            raise InputError(rec.path / "calibration" / "cam_to_cam.yaml",
                             "is missing, so the disparity ground truth cannot be converted to depth")
        sensor = (rec.width, rec.height)
        with _Sink("dsec", inputs, out, gt=has_gt, sensor=sensor, sensor_source="of the DSEC sequence", opts=opts) as sink:
            raw_total = 0
            for cam in CAMERAS:
                bar = opts.bar(rec.num_events(cam), f"{cam} events", "ev")
                try:
                    for ev, n_raw in rec.iter_events(cam, opts.chunk):
                        raw_total += n_raw
                        sink.add_events(cam, ev.x, ev.y, ev.t.astype(np.float64) / 1e6, ev.p)
                        bar.update(n_raw)
                finally:
                    bar.close()
            kept = sum(sink.stats[c]["events"] for c in CAMERAS)
            sink.notes.append(f"events rectified with DSEC's rectify_map.h5: kept {kept} of {raw_total} "
                              "(the others fall outside the rectified image)")
            if has_gt:
                ts = rec.gt_timestamps()
                bar = opts.bar(len(ts), "disparity GT", "frame")
                try:
                    for i in range(len(ts)):
                        depth = rec.depth(i)
                        sink.writer.add_depth("left", "rect", depth[None], np.array([ts[i] / 1e6]))
                        sink.gt_frames += 1
                        bar.update(1)
                finally:
                    bar.close()
                sink.notes.append(f"{len(ts)} disparity maps written as depth_image_rect = fB / d (fB = {rec.fB:.6g} px*m)")
            else:
                sink.notes.append("the sequence has no disparity ground truth (no disparity/event folder)")
            sink.calibration = rec.calibration
            sink.finish()
    return sink.summary()


# ======================================================================================
_CONVERTERS = {"text": _convert_text, "npz": _convert_npz, "aedat4": _convert_aedat4, "dsec": _convert_dsec}


def convert(inputs: list[str | os.PathLike], fmt: str, out: str | os.PathLike, **options) -> dict:
    """Convert ``inputs`` of format ``fmt`` into the MVSEC-layout file ``out``; returns a summary.

    Options (see ``ConvertOptions``): time_unit, one_based, left_camera, sensor=(width, height),
    left_offset=(dx, dy), right_offset=(dx, dy), sort, frames, imu, compress_events, chunk,
    progress. The summary holds events and first/last time per camera, duration, sensor, the
    companion files written, notes and warnings (each also issued as a :class:`ConvertWarning`).
    """
    if fmt not in _CONVERTERS:
        raise InputError(None, f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    opts = _make_options(fmt, options)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError(None, "no input given")
    for p in paths:
        if fmt == "dsec":
            if not p.is_dir():
                raise InputError(p, "is not a DSEC sequence folder (it does not exist or is not a folder)")
        elif not p.exists():
            raise InputError(p, "file does not exist")
        elif not p.is_file():
            raise InputError(p, "is not a file")
    out = Path(out)
    if out.suffix not in (".hdf5", ".h5"):
        raise InputError(out, "output must be an .hdf5 file (MVSEC layout)")
    if out.is_dir():
        raise InputError(out, "output is a folder; give a file name ending in .hdf5")
    _, gt_path, calib_dir = companion_paths(out)
    for p in paths:
        for o in (out, gt_path):
            if o.exists() and p.exists() and os.path.samefile(p, o):
                raise InputError(p, "is also the output; choose another --out")
    check_writable(out)  # a read-only or full disk fails now, not after reading the input
    summary = _CONVERTERS[fmt](paths, out, opts)
    for message in summary["warnings"]:
        warnings.warn(message, ConvertWarning, stacklevel=2)
    return summary
