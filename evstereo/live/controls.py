"""What a live session's keys and overlay act on: the replay clock, the frame rate, the running metrics.

``PlaybackControl`` is the engine's replay clock under the viewer's keys: pausing freezes it
(so resuming does not count the pause as skipped windows), stepping jumps it to the next
window, and +/- change its rate. ``RateMeter`` is the frames per second of wall time over the
last frames; ``RunningMetrics`` the protocol's metrics (``evstereo.metrics``) so far. None of
them draws anything (drawing and windows are ``evstereo.viz.viewer``).
"""

from __future__ import annotations

import time

import numpy as np

from evstereo.metrics import METRIC_NAMES, MetricAccumulator


class RunningMetrics(MetricAccumulator):
    """The protocol's metrics (``evstereo.metrics``: per frame, then averaged over frames) so far."""

    @property
    def mean_disparity_error(self) -> float | None:
        return self.compute()["mean_disparity_error"]

    @property
    def one_pixel_accuracy(self) -> float | None:
        return self.compute()["one_pixel_accuracy"]

    def update(self, prediction: np.ndarray, gt: np.ndarray | None, valid: np.ndarray | None = None):
        return None if gt is None else super().update(prediction, gt, valid)

    def as_dict(self) -> dict:
        """``{"frames": n, <METRIC_NAMES>...}``: the keys and units of evaluate's results.json."""
        r = self.compute()
        return {"frames": r["frames"], **{name: r[name] for name in METRIC_NAMES}}


class RateMeter:
    """Frames per second of wall time over the last ``n`` frames."""

    def __init__(self, n: int = 20) -> None:
        self.n, self.times = n, []

    def tick(self) -> float:
        self.times = (self.times + [time.perf_counter()])[-self.n :]
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)


# --- replay control -----------------------------------------------------------------------
class PlaybackControl:
    """A pausable replay clock with a variable rate, to pass as the engine's ``clock``/``sleep``.

    The engine already multiplies by its configured speed; ``rate`` is the factor on top of it
    that +/- change. While paused the clock stands still; the viewer then pulls a frame only
    on a step, and ``sleep`` jumps the clock to that window instead of waiting.
    """

    RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

    def __init__(self, wall=time.perf_counter, real_sleep=time.sleep) -> None:
        self.wall, self.real_sleep = wall, real_sleep
        self.rate = 1.0
        self.paused = False
        self._base_wall = wall()
        self._base_virtual = 0.0

    def clock(self) -> float:
        if self.paused:
            return self._base_virtual
        return self._base_virtual + (self.wall() - self._base_wall) * self.rate

    def _rebase(self) -> None:
        self._base_virtual, self._base_wall = self.clock(), self.wall()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.paused:
            self._base_virtual += seconds  # a step: jump to the window's end
        else:
            self.real_sleep(seconds / self.rate)

    def set_paused(self, paused: bool) -> None:
        if paused != self.paused:
            self._rebase()
            self.paused = paused
            self._base_wall = self.wall()

    def faster(self) -> None:
        self._set_rate(+1)

    def slower(self) -> None:
        self._set_rate(-1)

    def _set_rate(self, direction: int) -> None:
        i = min(range(len(self.RATES)), key=lambda k: abs(self.RATES[k] - self.rate)) + direction
        self._rebase()
        self.rate = self.RATES[min(max(i, 0), len(self.RATES) - 1)]
