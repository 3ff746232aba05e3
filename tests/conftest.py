"""Shared fixtures: paths to the real sample data and small generated recordings."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REAL_CALIB = SHARED_DATA / "mvsec" / "camchain-imucam-indoor_flying.yaml"
DVS128_NPZ = SHARED_DATA / "real" / "pendulum_left_30cm_2.tsv.npz"
DAVIS_AEDAT4 = SHARED_DATA / "real" / "davis346_sample_shiba24.aedat4"


@pytest.fixture(scope="session")
def random_recording(tmp_path_factory) -> Path:
    """A 1.2 s MVSEC-layout recording of random events (200 k ev/s) with 20 Hz random GT."""
    from random_recording import write_random_mvsec

    folder = tmp_path_factory.mktemp("random_rec")
    return write_random_mvsec(folder, "rand", 1.2, 200_000, gt_hz=20.0, seed=3, calibration=REAL_CALIB)
