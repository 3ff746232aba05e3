"""Reader benchmarks: one 50 ms window from a large MVSEC-layout file, and preparing a recording.

The files are written here with random events at a stated rate (the reader's cost depends on
how many events a window holds, not on what they show) and the real indoor_flying
calibration, so rectification is part of every window read.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from evstereo.benchmarks import Row
from evstereo.datasets.mvsec import MVSECRecording
from evstereo.datasets.prepared import prepare_recording
from evstereo.datasets.samples import SampleSpec
from evstereo.datasets.random_recording import T0, write_random_mvsec


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


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp(prefix="evstereo-bench-"))
    try:
        n_events = 2_000_000 if quick else 20_000_000
        rate = 2_000_000.0
        seconds = n_events / rate
        path = write_random_mvsec(tmp, "big", seconds, rate)
        t = time.perf_counter()
        rec = MVSECRecording(path)
        build = time.perf_counter() - t
        starts = np.random.default_rng(1).uniform(0.1, seconds - 0.1, 50 if quick else 200)
        base = rec.time_range("left")[0]
        times, counts = [], []
        for s in starts:
            t0 = base + int(s * 1e6)
            t = time.perf_counter()
            ev = rec.events("left", t0, t0 + 50_000)
            times.append(time.perf_counter() - t)
            counts.append(len(ev))
        rec.close()
        ours = float(np.median(times)) * 1e3
        with h5py.File(path, "r") as f:
            ds = f["davis/left/events"]
            bt = []
            for s in starts[:20]:
                t = time.perf_counter()
                _bisect_window(ds, T0 + s, T0 + s + 0.05)
                bt.append(time.perf_counter() - t)
        base_ms = float(np.median(bt)) * 1e3
        group = f"read one 50 ms window ({n_events / 1e6:.0f} M events/camera, {rate / 1e6:.0f} M ev/s)"
        rows.append(Row(group, "ours (ms index + rectify)", ours, "ms", f"{base_ms / ours:.1f}x faster than bisection",
                        "< 5 ms", ours < 5.0, note=f"median of {len(times)}, ~{int(np.mean(counts)):,} events/window"))
        rows.append(Row(group, "baseline: bisection on the HDF5 t column (no rectify)", base_ms, "ms"))
        rows.append(Row(group, "one-time index build", build, "s", note="cached beside the file afterwards"))
        (tmp / "big_data.hdf5").unlink()

        seconds = 6.0 if quick else 60.0
        prate = 1_000_000.0
        path = write_random_mvsec(tmp, "prep", seconds, prate, gt_hz=20.0, seed=2)
        MVSECRecording(path).close()  # index built outside the timing, as in normal use
        t = time.perf_counter()
        prepare_recording(path, tmp / "prep_cache.h5", SampleSpec(), progress=False)
        took = time.perf_counter() - t
        group = f"prepare a {seconds:.0f} s recording (SBT 5 bins, {prate / 1e6:.0f} M ev/s/camera, 20 Hz GT)"
        rows.append(Row(group, "data_tools.prepare", took, "s", f"{seconds / took:.1f}x real time",
                        f"< {seconds:.0f} s", took < seconds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
