"""Representation benchmark: voxel grid and SBT of 1 M random events (5 bins, 346 x 260).

Baselines measured in the same run: tonic's ``to_voxel_grid_numpy`` (structured-array input
built once, outside the timing, as tonic expects it) and a plain numpy ``np.add.at`` voxel
grid with our conventions. Times are the best of several calls after a warm-up call, so the
one-time numba compile (or disk-cache load) is excluded.
"""

from __future__ import annotations

import threading

import numpy as np

from benchmarks import BenchOptions, Row, best_time
from evstereo.events import sbt, voxel_grid

N_EVENTS = 1_000_000
BINS, HEIGHT, WIDTH = 5, 260, 346
WINDOW_US = 50_000
TARGET_VS_TONIC = 8.0
TARGET_MEV_S = 150.0


def random_events(n: int = N_EVENTS, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted random events in the canonical dtypes over a 50 ms window of a 346 x 260 sensor."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, WIDTH, n).astype(np.int16)
    y = rng.integers(0, HEIGHT, n).astype(np.int16)
    t = np.sort(rng.integers(0, WINDOW_US, n)).astype(np.int64)
    p = rng.choice(np.array([-1, 1], np.int8), n)
    return x, y, t, p


def numpy_voxel_grid(x, y, t, p, bins: int, height: int, width: int) -> np.ndarray:
    """Our voxel grid convention written with ``np.add.at`` (the test reference)."""
    tf = t.astype(np.float64)
    span = tf[-1] - tf[0]
    tn = (bins - 1) * (tf - tf[0]) / span if span > 0 else np.zeros(len(tf))
    b = np.minimum(tn.astype(np.int64), bins - 1)
    frac = tn - b
    pol = np.where(p > 0, 1.0, -1.0)
    xi, yi = x.astype(np.int64), y.astype(np.int64)
    grid = np.zeros((bins, height, width), np.float32)
    np.add.at(grid, (b, yi, xi), (pol * (1 - frac)).astype(np.float32))
    right = b + 1 < bins
    np.add.at(grid, (b[right] + 1, yi[right], xi[right]), (pol * frac)[right].astype(np.float32))
    return grid


def _mev_s(seconds: float, n: int = N_EVENTS) -> float:
    return n / seconds / 1e6


def run(quick: bool, options: BenchOptions | None = None) -> list[Row]:
    """Measure and return the table rows (``quick``: fewer repeats, same problem size)."""
    x, y, t, p = random_events()
    fast_rep, slow_rep = (10, 2) if quick else (50, 5)
    size = f"1 M events ({BINS} bins, {WIDTH}x{HEIGHT})"
    rows: list[Row] = []

    t_ours = best_time(lambda: voxel_grid(x, y, t, p, BINS, HEIGHT, WIDTH), repeat=fast_rep)
    t_numpy = best_time(lambda: numpy_voxel_grid(x, y, t, p, BINS, HEIGHT, WIDTH), repeat=slow_rep)

    t_tonic = None
    tonic_note = ""
    try:
        from tonic.functional import to_voxel_grid_numpy
    except ImportError:  # tonic is a test/bench extra
        tonic_note = "tonic not installed"
    else:
        events = np.zeros(N_EVENTS, dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
        events["x"], events["y"], events["t"], events["p"] = x, y, t, p
        t_tonic = best_time(lambda: to_voxel_grid_numpy(events, (WIDTH, HEIGHT, 2), BINS), repeat=slow_rep)

    group = f"voxel grid, {size}"
    mev = _mev_s(t_ours)
    if t_tonic is not None:
        speedup = t_tonic / t_ours
        rows.append(
            Row(group, "ours (numba)", t_ours * 1e3, "ms", f"{speedup:.1f}x faster than tonic",
                f">= {TARGET_VS_TONIC:g}x vs tonic", speedup >= TARGET_VS_TONIC,
                f"{mev:.0f} M ev/s; {t_numpy / t_ours:.1f}x faster than numpy add.at")
        )
    else:
        rows.append(Row(group, "ours (numba)", t_ours * 1e3, "ms", "", f">= {TARGET_VS_TONIC:g}x vs tonic",
                        None, tonic_note))
    rows.append(Row(group, "ours (numba), throughput", mev, "M ev/s", "", f">= {TARGET_MEV_S:g} M ev/s",
                    mev >= TARGET_MEV_S, "excludes the one-time JIT compile"))
    if t_tonic is not None:
        rows.append(Row(group, "tonic to_voxel_grid_numpy", t_tonic * 1e3, "ms", "baseline", "", None,
                        f"{_mev_s(t_tonic):.0f} M ev/s; structured-array input built outside the timing; "
                        f"scales time by B, loses ~1/(2B) of the weight"))
    rows.append(Row(group, "numpy np.add.at reference", t_numpy * 1e3, "ms",
                    f"{t_numpy / t_tonic:.2f}x tonic's time" if t_tonic else "", "", None,
                    f"{_mev_s(t_numpy):.0f} M ev/s; same convention as ours"))

    # SBT, the stereo network's input
    t_sbt = best_time(lambda: sbt(x, y, t, p, BINS, HEIGHT, WIDTH), repeat=fast_rep)
    rows.append(Row(f"sbt, {size}", "ours (numba)", t_sbt * 1e3, "ms",
                    f"{t_tonic / t_sbt:.1f}x faster than tonic's voxel grid" if t_tonic else "", "", None,
                    f"{_mev_s(t_sbt):.0f} M ev/s"))

    # a stereo pair: the kernels release the GIL, so two threads build both cameras at once
    x2, y2, t2, p2 = random_events(seed=1)

    def pair_sequential() -> None:
        voxel_grid(x, y, t, p, BINS, HEIGHT, WIDTH)
        voxel_grid(x2, y2, t2, p2, BINS, HEIGHT, WIDTH)

    def pair_threads() -> None:
        th = threading.Thread(target=voxel_grid, args=(x2, y2, t2, p2, BINS, HEIGHT, WIDTH))
        th.start()
        voxel_grid(x, y, t, p, BINS, HEIGHT, WIDTH)
        th.join()

    t_seq = best_time(pair_sequential, repeat=fast_rep)
    t_thr = best_time(pair_threads, repeat=fast_rep)
    pair = "voxel grid, stereo pair 2 x 1 M events"
    rows.append(Row(pair, "ours, one after the other", t_seq * 1e3, "ms", "", "", None,
                    f"{_mev_s(t_seq, 2 * N_EVENTS):.0f} M ev/s"))
    rows.append(Row(pair, "ours, 2 threads (nogil)", t_thr * 1e3, "ms",
                    f"{t_seq / t_thr:.2f}x faster than sequential", "", None, f"{_mev_s(t_thr, 2 * N_EVENTS):.0f} M ev/s; depends on free cores"))
    return rows
