"""Metrics on hand-made disparity maps against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from evstereo.metrics import (DSEC_METRIC_NAMES, METRIC_NAMES, METRIC_UNITS, MetricAccumulator, format_metrics,
                              frame_metrics)


def test_one_frame_by_hand():
    gt = np.array([[10.0, 20.0], [np.nan, 5.0]])
    pred = np.array([[10.5, 18.0], [3.0, 5.0]])
    m = frame_metrics(pred, gt, fB=20.0)
    # valid pixels: 10, 20, 5 (NaN masked); errors 0.5, 2.0, 0.0
    assert m["mean_disparity_error"] == pytest.approx(2.5 / 3)
    assert m["one_pixel_accuracy"] == pytest.approx(2 / 3)
    # depths: gt 2, 1, 4 m; pred 20/10.5, 20/18, 4 m -> errors 2-1.904762, 1.111111-1, 0
    d = [abs(20 / 10.5 - 2.0), abs(20 / 18 - 1.0), 0.0]
    assert m["mean_depth_error"] == pytest.approx(np.mean(d))
    assert m["median_depth_error"] == pytest.approx(np.median(d))


def test_mask_and_per_frame_averaging():
    acc = MetricAccumulator(fB=10.0)
    gt1 = np.full((2, 2), 4.0)
    pred1 = gt1 + np.array([[0.0, 0.0], [0.0, 4.0]])  # one bad pixel of four
    gt2 = np.array([[2.0, 50.0]])  # the 50 px pixel is masked out by the caller
    pred2 = np.array([[4.0, 50.0]])
    acc.update(pred1, gt1)
    acc.update(pred2, gt2, valid=gt2 <= 36.3)
    assert acc.update(pred2, np.full((1, 2), np.nan)) is None  # no valid pixel: frame left out
    r = acc.compute()
    assert r["frames"] == 2
    # per frame: mean errors 1.0 and 2.0 -> 1.5 (a pixel average would give 6/5 = 1.2)
    assert r["mean_disparity_error"] == pytest.approx(1.5)
    assert r["one_pixel_accuracy"] == pytest.approx((0.75 + 0.0) / 2)
    # depth: frame 1 errors [0,0,0, |10/8-10/4|=1.25] mean 0.3125, median 0; frame 2: |2.5-5| = 2.5
    assert r["mean_depth_error"] == pytest.approx((0.3125 + 2.5) / 2)
    assert r["median_depth_error"] == pytest.approx((0.0 + 2.5) / 2)


def test_zero_and_nan_predictions_count_as_errors():
    gt = np.array([[2.0, 2.0]])
    m = frame_metrics(np.array([[0.0, np.nan]]), gt, fB=20.0)
    assert m["mean_disparity_error"] == pytest.approx(2.0)
    assert m["one_pixel_accuracy"] == 0.0
    assert np.isfinite(m["mean_depth_error"]) and m["mean_depth_error"] == pytest.approx(20 / 0.1 - 10)
    assert "mean_depth_error" not in frame_metrics(gt, gt)  # no fB: disparity metrics only


def test_names_units_and_their_console_form():
    assert set(METRIC_UNITS) == set(METRIC_NAMES) | set(DSEC_METRIC_NAMES)
    assert METRIC_UNITS == {"mean_disparity_error": "px", "one_pixel_accuracy": "fraction",
                            "mean_depth_error": "m", "median_depth_error": "m",
                            "1pe": "%", "2pe": "%", "mae": "px", "rmse": "px"}
    text = format_metrics({"mean_disparity_error": 1.2594, "one_pixel_accuracy": 0.737, "mean_depth_error": 0.297,
                           "median_depth_error": None, "frames": 4})
    assert text == "mean_disparity_error 1.259 px, one_pixel_accuracy 0.737, mean_depth_error 0.297 m"
