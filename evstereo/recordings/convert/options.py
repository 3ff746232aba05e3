"""Options, constants and small helpers shared by the converters (see :mod:`evstereo.recordings.convert`).

``ConvertOptions`` holds every option of ``convert``; ``make_options`` checks them against the
format (an option that does not apply to it is an InputError naming the flag) and fills in the
defaults. The helpers work on plain numpy arrays: ``first_unsorted`` (index of the first
timestamp earlier than its predecessor), ``polarity_ok`` (0/1 or -1/+1) and ``to_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from evstereo.errors import InputError
from evstereo.events.time_index import MAX_ABS_US

FORMATS = ("text", "npz", "aedat4", "dsec")
TIME_UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}  # ticks per second
DEFAULT_TIME_UNIT = {"text": "s", "npz": "us"}
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


def make_options(fmt: str, options: dict) -> ConvertOptions:
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


def option_names(fmt: str) -> set[str]:
    return {name for name, formats in _APPLIES.items() if fmt in formats}


def first_unsorted(t: np.ndarray) -> int | None:
    """Index of the first element smaller than the one before it, or None."""
    bad = np.flatnonzero(np.diff(t) < 0)
    return int(bad[0]) + 1 if len(bad) else None


def polarity_ok(p: np.ndarray) -> np.ndarray:
    return (p == 0) | (p == 1) | (p == -1)


def to_seconds(t: np.ndarray, unit: str) -> np.ndarray:
    return np.asarray(t, np.float64) / float(TIME_UNITS[unit])
