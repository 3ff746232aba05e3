"""``text`` input: lines ``t x y p [camera]`` (whitespace or comma separated, ``#`` comments).

One file with a camera column (0/1 or left/right; ``left_camera`` says which id is the left
camera), one file without it (left camera only), or two files (left, then right). Read in
chunks of ``opts.chunk`` lines, never whole; a line that cannot be read is an InputError
quoting it with its number.
"""

from __future__ import annotations

import io
import itertools
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from evstereo.errors import InputError
from evstereo.geometry import CAMERAS
from evstereo.recordings.convert.options import (MAX_ABS_SECONDS, ConvertOptions, first_unsorted, polarity_ok,
                                                 to_seconds)
from evstereo.recordings.convert.sink import Sink, write_sorted

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


def convert_text(inputs: list[Path], out: Path, opts: ConvertOptions) -> dict:
    if len(inputs) not in (1, 2):
        raise InputError(None, f"the text format takes one file (with a camera column) or two files "
                               f"(left, then right), not {len(inputs)}")
    if len(inputs) == 2:
        jobs = [(inputs[0], 4, "left"), (inputs[1], 4, "right")]
    else:
        ncols = _count_columns(inputs[0])
        jobs = [(inputs[0], ncols, None if ncols == 5 else "left")]
    unit = opts.time_unit
    sink = Sink("text", inputs, out, gt=False, sensor=opts.sensor,
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
                t_s_all = to_seconds(t, unit)
                for bad_rows, problem in (
                    (~np.isfinite(t.astype(np.float64)), "the time is not a finite number"),
                    (~(np.abs(t_s_all) <= MAX_ABS_SECONDS),
                     f"the time ({unit}) is beyond int64 microseconds (+-{MAX_ABS_SECONDS:.3g} s); is --time-unit "
                     f"{unit} right?"),
                    ((x != np.floor(x)) | (y != np.floor(y)), "pixel coordinates must be whole numbers"),
                    (~polarity_ok(p), "polarity must be 0/1 or -1/+1"),
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
                    i = first_unsorted(tc)
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
                    write_sorted(sink, cam, tc[order], xc[order], yc[order], pc[order], unit, opts)
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
