"""DSEC's disparity metrics (1PE, 2PE, MAE, RMSE) and the coverage counts, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from evstereo.metrics import DSEC_METRIC_NAMES, MetricAccumulator, coverage, dsec_frame_metrics, format_metrics


def test_one_frame_by_hand():
    gt = np.array([[10.0, 20.0, 5.0], [8.0, np.nan, 0.0]])
    pred = np.array([[10.5, 18.0, 8.0], [8.0, 3.0, 4.0]])
    m = dsec_frame_metrics(pred, gt)
    # valid: 10, 20, 5, 8 (NaN and 0 GT are invalid); |errors| 0.5, 2.0, 3.0, 0.0
    # > 1 px: 2.0 and 3.0 -> 2 of 4 = 50 %; > 2 px: only 3.0 (2.0 is not > 2) -> 25 %
    assert m["1pe"] == pytest.approx(50.0)
    assert m["2pe"] == pytest.approx(25.0)
    assert m["mae"] == pytest.approx((0.5 + 2.0 + 3.0 + 0.0) / 4)  # 1.375
    # RMSE: sqrt((0.25 + 4 + 9 + 0) / 4) = sqrt(3.3125) = 1.82003
    assert m["rmse"] == pytest.approx(np.sqrt(13.25 / 4))
    assert list(m) == list(DSEC_METRIC_NAMES)


def test_mask_nan_predictions_and_exactly_one_pixel():
    gt = np.array([[4.0, 4.0, 4.0, 30.0]])
    pred = np.array([[5.0, np.nan, 4.0, 0.0]])
    m = dsec_frame_metrics(pred, gt, valid=gt <= 10)  # the 30 px pixel is masked by the caller
    # errors: exactly 1.0 (not > 1), NaN read as 0 px -> 4.0, 0.0
    assert m["1pe"] == pytest.approx(100 / 3) and m["2pe"] == pytest.approx(100 / 3)
    assert m["mae"] == pytest.approx(5 / 3)
    assert m["rmse"] == pytest.approx(np.sqrt(17 / 3))  # (1 + 16 + 0) / 3
    assert dsec_frame_metrics(pred, np.full((1, 4), np.nan)) is None


def test_accumulator_averages_dsec_metrics_over_frames_and_prints_them():
    acc = MetricAccumulator(fB=10.0, dsec=True)
    acc.update(np.array([[1.0, 5.0]]), np.array([[1.0, 1.0]]))  # errors 0, 4 -> 1pe 50, mae 2, rmse sqrt(8)
    acc.update(np.array([[2.0]]), np.array([[2.0]]))  # perfect -> all 0
    r = acc.compute()
    assert r["frames"] == 2
    assert r["1pe"] == pytest.approx(25.0) and r["2pe"] == pytest.approx(25.0)
    assert r["mae"] == pytest.approx(1.0) and r["rmse"] == pytest.approx(np.sqrt(8) / 2)
    assert r["mean_disparity_error"] == pytest.approx(1.0)  # the MVSEC four stay beside them
    assert "1pe" not in MetricAccumulator().compute()  # only when asked for
    text = format_metrics({"1pe": 25.0, "mae": 1.0, "rmse": 1.4142})
    assert text == "1pe 25.000 %, mae 1.000 px, rmse 1.414 px"


def test_coverage_counts():
    valid = np.array([[True, True, False], [True, False, True]])
    keep = np.array([[True, False, True], [True, True, False]])
    # valid 4 pixels; kept and valid: (0,0), (1,0) -> 2 of 4
    assert coverage(valid, keep) == (2, 4)
