"""Convert real event recordings into MVSEC-layout HDF5 files (``data_tools.convert`` is the CLI).

One module per input format (``text``, ``npz``, ``aedat4``, ``dsec``), each a function
``convert_<format>(inputs, out, opts) -> summary``; ``options`` holds ``ConvertOptions`` and the
shared helpers, ``sink`` the output side (checks, counts, the atomic writer, the summary).

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

import os
import warnings
from pathlib import Path

from evstereo.errors import InputError
from evstereo.fileio import check_writable
from evstereo.recordings.convert.aedat4 import convert_aedat4
from evstereo.recordings.convert.dsec import convert_dsec
from evstereo.recordings.convert.npz import convert_npz
from evstereo.recordings.convert.options import FORMATS, TIME_UNITS, ConvertOptions, ConvertWarning, make_options
from evstereo.recordings.convert.text import convert_text
from evstereo.recordings.mvsec_writer import companion_paths

__all__ = ["FORMATS", "TIME_UNITS", "ConvertOptions", "ConvertWarning", "convert"]

CONVERTERS = {"text": convert_text, "npz": convert_npz, "aedat4": convert_aedat4, "dsec": convert_dsec}


def convert(inputs: list[str | os.PathLike], fmt: str, out: str | os.PathLike, **options) -> dict:
    """Convert ``inputs`` of format ``fmt`` into the MVSEC-layout file ``out``; returns a summary.

    Options (see ``ConvertOptions``): time_unit, one_based, left_camera, sensor=(width, height),
    left_offset=(dx, dy), right_offset=(dx, dy), sort, frames, imu, compress_events, chunk,
    progress. The summary holds events and first/last time per camera, duration, sensor, the
    companion files written, notes and warnings (each also issued as a :class:`ConvertWarning`).
    """
    if fmt not in CONVERTERS:
        raise InputError(None, f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    opts = make_options(fmt, options)
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
    summary = CONVERTERS[fmt](paths, out, opts)
    for message in summary["warnings"]:
        warnings.warn(message, ConvertWarning, stacklevel=2)
    return summary
