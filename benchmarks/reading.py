"""Reader benchmarks: one 50 ms window from a large MVSEC-layout file, with the events stored
uncompressed and compressed (timed alternately, same windows, same run), and preparing a recording.

Window reads are timed twice: warm (random windows, the file in the operating system's page
cache, as when a recording is read again) and in a first pass (consecutive windows straight
after the file's pages were dropped with ``posix_fadvise(DONTNEED)``, as when a recording is
read for the first time or is larger than memory). Compression trades one for the other: less
to read from the disk, more to decode.

The large files are written here with random events at a stated rate (the reader's cost depends
on how many events a window holds, not on what they show) and the real indoor_flying
calibration, so rectification is part of every window read. Random coordinates compress worse
than real ones, so the compressed layout is also timed on simulated events.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks import BenchOptions, Row
from evstereo.recordings.mvsec import MVSECRecording
from evstereo.recordings.mvsec_writer import COMPRESS_EVENTS, MVSECWriter
from evstereo.datasets.prepared import prepare_recording
from evstereo.datasets.samples import SampleSpec
from tests.random_recording import T0, write_random_mvsec
from evstereo.geometry import CAMERAS
from evstereo.models import load_checkpoint, shipped_checkpoint


def _bisect_window(ds: h5py.Dataset, t0: float, t1: float) -> np.ndarray:
    """Baseline without an index: binary search on the HDF5 time column, then one slice."""
    def first_after(t):
        lo, hi = 0, ds.shape[0]
        while lo < hi:
            mid = (lo + hi) // 2
            if ds[mid, 2] <= t:
                lo = mid + 1
            else:
                hi = mid
        return lo
    return ds[first_after(t0) : first_after(t1)]


def _copy_events(src: Path, dst: Path, compress_events: bool) -> Path:
    """The events of ``src`` in another event layout (no GT), for timing the same windows."""
    with h5py.File(src, "r") as f, MVSECWriter(dst, compress_events=compress_events) as w:
        for cam in CAMERAS:
            ds = f[f"davis/{cam}/events"]
            for s in range(0, ds.shape[0], 1 << 20):
                rows = ds[s : s + (1 << 20)]
                w.add_events(cam, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])
    return dst


def can_drop_cache() -> bool:
    """Whether this system lets a process drop a file's pages from the page cache."""
    return hasattr(os, "posix_fadvise")


def drop_cache(path: Path) -> None:
    """Drop ``path``'s pages from the page cache (clean pages go; the next read comes from disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _alternate(recs: list[MVSECRecording], starts_s: np.ndarray) -> tuple[list[float], list[int]]:
    """Median ms per window of each recording, reading the same windows alternately."""
    base = recs[0].time_range("left")[0]
    for rec in recs:  # first reads (JIT, page cache) outside the timing
        rec.events("left", base, base + 50_000)
    times = [[] for _ in recs]
    counts = []
    for s in starts_s:
        t0 = base + int(s * 1e6)
        for i, rec in enumerate(recs):
            t = time.perf_counter()
            ev = rec.events("left", t0, t0 + 50_000)
            times[i].append(time.perf_counter() - t)
        counts.append(len(ev))
    return [float(np.median(v)) * 1e3 for v in times], counts


def _first_pass(recs: list[MVSECRecording], windows: int, repeats: int = 3) -> list[float]:
    """Mean ms per window of a pass over ``windows`` consecutive 50 ms windows read straight
    after the file's pages were dropped from the page cache (as a recording read for the first
    time, or one larger than memory: the operating system's read-ahead included); the median
    over ``repeats`` passes, the recordings taking turns."""
    base = recs[0].time_range("left")[0]
    times = [[] for _ in recs]
    for _ in range(repeats):
        for i, rec in enumerate(recs):
            drop_cache(rec.path)
            t = time.perf_counter()
            for k in range(windows):
                rec.events("left", base + k * 50_000, base + (k + 1) * 50_000)
            times[i].append((time.perf_counter() - t) / windows)
    return [float(np.median(v)) * 1e3 for v in times]


def _first_pass_rows(group: str, recs: list[MVSECRecording], windows: int, warm_ms: float) -> list[Row]:
    """The two first-pass rows (uncompressed, compressed) of ``recs`` in that order, beside the
    uncompressed warm read ``warm_ms``; none where the page cache cannot be dropped."""
    if not can_drop_cache():
        return []
    plain, packed = _first_pass(recs, windows)
    first = "first pass (file not in the page cache)"
    return [Row(group, f"ours, events uncompressed, {first}", plain, "ms", f"{plain / warm_ms:.1f}x a warm read",
                note=f"mean over {windows} consecutive windows, median of 3 passes"),
            Row(group, f"ours, events compressed, {first}", packed, "ms", f"{packed / plain:.2f}x uncompressed",
                "no slower than uncompressed", packed <= plain, note="the same windows; the layouts take turns")]


def _events_mb(path: Path) -> float:
    with h5py.File(path, "r") as f:
        return sum(f[f"davis/{c}/events"].id.get_storage_size() for c in CAMERAS) / 1e6


def run(quick: bool, options: BenchOptions | None = None) -> list[Row]:
    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp(prefix="evstereo-bench-"))
    try:
        n_events = 2_000_000 if quick else 20_000_000
        rate = 2_000_000.0
        seconds = n_events / rate
        plain = write_random_mvsec(tmp, "big", seconds, rate, compress_events=False)
        packed = write_random_mvsec(tmp, "bigz", seconds, rate, compress_events=True)
        t = time.perf_counter()
        rec = MVSECRecording(plain)
        build = time.perf_counter() - t
        recz = MVSECRecording(packed)
        starts = np.random.default_rng(1).uniform(0.1, seconds - 0.1, 50 if quick else 200)
        (ours, oursz), counts = _alternate([rec, recz], starts)
        group = f"read one 50 ms window ({n_events / 1e6:.0f} M events/camera, {rate / 1e6:.0f} M ev/s)"
        first_pass = _first_pass_rows(group, [rec, recz], int(seconds * 20), ours)
        rec.close()
        recz.close()
        with h5py.File(plain, "r") as f:
            ds = f["davis/left/events"]
            bt = []
            for s in starts[:20]:
                t = time.perf_counter()
                _bisect_window(ds, T0 + s, T0 + s + 0.05)
                bt.append(time.perf_counter() - t)
        base_ms = float(np.median(bt)) * 1e3
        default, other = (oursz, ours) if COMPRESS_EVENTS else (ours, oursz)
        mb, mbz = _events_mb(plain), _events_mb(packed)
        layout = "compressed" if COMPRESS_EVENTS else "uncompressed"
        rows.append(Row(group, f"ours (ms index + rectify), events {layout} (the writer's default)", default, "ms",
                        f"{base_ms / default:.1f}x faster than bisection", "< 5 ms", default < 5.0,
                        note=f"median of {len(starts)}, ~{int(np.mean(counts)):,} events/window"))
        rows.append(Row(group, "ours, events uncompressed" if COMPRESS_EVENTS else
                        "ours, events compressed (--compress-events: Blosc LZ4HC + byte shuffle)", other, "ms",
                        f"{other / default:.2f}x the default's time",
                        note=f"same windows, read alternately; events {mbz:.0f} MB compressed vs {mb:.0f} MB "
                             f"({mb / mbz:.1f}x smaller; random coordinates compress worst)"))
        rows += first_pass
        rows.append(Row(group, "baseline: bisection on the HDF5 t column (no rectify, uncompressed)", base_ms, "ms"))
        rows.append(Row(group, "one-time index build", build, "s", note="cached beside the file afterwards"))
        for p in (plain, packed):
            p.unlink()

        # The same comparison on simulated events (real-looking coordinates compress far better).
        from evstereo.simulation import synthesize

        sim_s = 0.5 if quick else 2.0
        info = synthesize(tmp / "sim", "sim", sim_s, seed=0, compress_events=False)
        sim = Path(info["data"])
        simz = _copy_events(sim, tmp / "sim" / "simz_data.hdf5", compress_events=True)
        calib = Path(info["calibration"]).parent
        recs = [MVSECRecording(sim, calibration=calib), MVSECRecording(simz, calibration=calib)]
        starts = np.random.default_rng(2).uniform(0.06, sim_s - 0.06, 50 if quick else 200)
        (a, b), counts = _alternate(recs, starts)
        group = f"read one 50 ms window of simulated events ({sim_s:g} s synthetic recording, seed 0)"
        first_pass = _first_pass_rows(group, recs, int(sim_s * 20), a)
        for r in recs:
            r.close()
        mb, mbz = _events_mb(sim), _events_mb(simz)
        rows.append(Row(group, "ours, events uncompressed", a, "ms",
                        note=f"median of {len(starts)}, ~{int(np.mean(counts)):,} events/window; events {mb:.0f} MB"))
        rows.append(Row(group, "ours, events compressed (--compress-events)", b, "ms", f"{b / a:.2f}x uncompressed",
                        note=f"events {mbz:.0f} MB ({mb / mbz:.1f}x smaller)"))
        rows += first_pass
        shutil.rmtree(tmp / "sim")

        seconds = 6.0 if quick else 60.0
        prate = 1_000_000.0
        path = write_random_mvsec(tmp, "prep", seconds, prate, gt_hz=20.0, seed=2)
        MVSECRecording(path).close()  # index built outside the timing, as in normal use
        spec = SampleSpec.for_input(load_checkpoint(shipped_checkpoint()).input_spec)  # what training prepares
        t = time.perf_counter()
        prepare_recording(path, tmp / "prep_cache.h5", spec, progress=False)
        took = time.perf_counter() - t
        group = (f"prepare a {seconds:.0f} s recording ({spec.representation} {spec.bins} bins, the shipped "
                 f"network's input; {prate / 1e6:.0f} M ev/s/camera, 20 Hz GT)")
        rows.append(Row(group, "data_tools.prepare", took, "s", f"{seconds / took:.1f}x real time",
                        f"< {seconds:.0f} s", took < seconds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
