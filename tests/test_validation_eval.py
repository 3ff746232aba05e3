"""scripts/validation_eval.py's thinned copies: each camera keeps its own share, GT unchanged."""

from __future__ import annotations

import sys

import numpy as np

from conftest import ROOT


def test_thinned_copy_keeps_a_share_of_each_camera_independently_and_the_ground_truth(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from validation_eval import thinned_copy
    from evstereo.recordings.recording import open_recording
    from evstereo.simulation import synthesize

    synthesize(tmp_path, "v", 0.3, 5)
    copy = thinned_copy(tmp_path / "v_data.hdf5", tmp_path, "v_keep10", 0.1, seed=1)
    with open_recording(tmp_path / "v_data.hdf5") as whole, open_recording(copy) as thin:
        assert thin.calibration.fB == whole.calibration.fB and (thin.height, thin.width) == (whole.height, whole.width)
        assert np.array_equal(thin.gt_timestamps(), whole.gt_timestamps())
        assert np.array_equal(thin.depth(1), whole.depth(1), equal_nan=True)
        for cam in ("left", "right"):
            n, k = whole.num_events(cam), thin.num_events(cam)
            assert abs(k / n - 0.1) < 4 * np.sqrt(0.1 * 0.9 / n), (cam, n, k)
        # independent subsets: the share of left events kept says nothing of the right camera's
        t0, t1 = whole.time_range("left")
        kept = thin.events("left", t0 - 1, t1 + 1)
        assert np.isin(kept.t, whole.events("left", t0 - 1, t1 + 1).t).all()
        assert len(kept) != thin.num_events("right")
