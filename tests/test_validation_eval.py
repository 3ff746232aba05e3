"""scripts/validation_eval.py: thinned copies (each camera keeps its own share, GT unchanged) and
the comparison line candidates are chosen by."""

from __future__ import annotations

import sys

import h5py
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
    # independent subsets: row i of the left camera being kept says nothing of row i of the right
    # one (the same mask for both would keep 10 % of the rows in both, independent ones 1 %)
    kept = {}
    with h5py.File(tmp_path / "v_data.hdf5") as src, h5py.File(copy) as dst:
        for cam in ("left", "right"):
            rows, sub = src[f"davis/{cam}/events"][:], dst[f"davis/{cam}/events"][:]
            keys = lambda r: np.ascontiguousarray(r).view(np.dtype((np.void, r.itemsize * 4))).ravel()  # noqa: E731
            kept[cam] = np.isin(keys(rows), keys(sub))
            assert kept[cam].sum() == len(sub)  # every kept row is one of the source's
    m = min(len(kept["left"]), len(kept["right"]))
    assert (kept["left"][:m] & kept["right"][:m]).mean() < 0.02


def test_comparison_is_the_geometric_mean_error_ratio_over_shared_recordings():
    sys.path.insert(0, str(ROOT / "scripts"))
    from validation_eval import comparison

    mine = {"a": (1.0, 0.9), "b": (4.0, 0.5), "c": (3.0, 0.1), "only_mine": (9.0, 0.0)}
    other = {"a": (2.0, 0.8), "b": (2.0, 0.6), "c": (3.0, 0.1), "only_other": (1.0, 1.0)}
    # ratios 0.5, 2, 1 over the three shared recordings: geometric mean 1, one better, one worse
    assert comparison(mine, other) == "mean-error ratio 1.000 (geometric mean over 3), better on 1, worse on 1"
    assert comparison({"a": (1.0, 0.9)}, {"a": (8.0, 0.1)}).startswith("mean-error ratio 0.125 ")
    assert comparison(mine, {"x": (1.0, 1.0)}) is None
