"""MVSEC-layout recordings of uniformly random events (benchmarks and tests).

A reader's cost depends on how many events a window holds, not on what they show, so these
files stand in for large recordings that would take long to simulate. They carry the real
indoor_flying calibration, so rectification runs as on real data. Their random depth does not
compress, so it is stored uncompressed (tests rely on that layout); the events follow the
writer's default unless ``compress_events`` says otherwise.

A fixture, not part of the library: tests import it as ``random_recording`` (``tests/`` is on
pytest's path, like ``dsec_fixtures``), the benchmarks as ``tests.random_recording`` (from the
repository root, where ``python -m apps.bench`` runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import evstereo
from evstereo.geometry import load_calibration
from evstereo.recordings.mvsec_writer import MVSECWriter, calibration_file

CALIBRATION = Path(evstereo.__file__).parent / "simulation" / "indoor_flying_camchain.yaml"
T0 = 1.5e9  # MVSEC stores absolute (Unix) seconds


def write_random_mvsec(folder: Path, name: str, seconds: float, rate: float, gt_hz: float = 0.0, seed: int = 0,
                       calibration: Path = CALIBRATION, compress_events: bool | None = None) -> Path:
    """An MVSEC-layout recording with uniformly random events at ``rate`` per camera (and random GT)."""
    rng = np.random.default_rng(seed)
    data = folder / f"{name}_data.hdf5"
    gt = folder / f"{name}_gt.hdf5" if gt_hz else None
    with MVSECWriter(data, gt, compress=False, compress_events=compress_events) as w:
        for cam in ("left", "right"):
            step = 1.0
            for s in np.arange(0.0, seconds, step):
                n = int(rate * min(step, seconds - s))
                t = T0 + s + np.sort(rng.uniform(0, min(step, seconds - s), n))
                w.add_events(cam, rng.integers(0, 346, n), rng.integers(0, 260, n), t, rng.choice([-1, 1], n))
        if gt_hz:
            ts = T0 + np.arange(1, int(seconds * gt_hz)) / gt_hz
            for i in range(0, len(ts), 50):
                part = ts[i : i + 50]
                w.add_depth("left", "rect", rng.uniform(0.6, 8.0, (len(part), 260, 346)), part)
    calib = folder / f"{name}_calib"
    calib.mkdir(exist_ok=True)
    load_calibration(calibration).to_camchain_yaml(calibration_file(calib, name))
    return data
