"""One prediction as the apps make it: input scale, network, disparity and confidence at the sensor's size.

``Predictor(model, height, width, scale)`` runs ``model`` on a sensor's event tensors
[B, T, C, H, W]: it resamples them by the input scale (``evstereo.datasets.scaling``: "auto"
brings the rig's disparities to the MVSEC rig's when f*B is known, else the sensor to the
size the network is trained around, ``model.nominal_size`` or NOMINAL_HW; either bound so that
the recording's typical disparity from its events lies between a quarter and half of
``model.max_disparity``, see ``auto_scale_and_rule``; a number is that factor; 1 is off),
runs the model, and brings the disparity (in the sensor's pixels) and the confidence back to
H x W. Models with ``native_resolution`` (the
SGBM baseline) always run at scale 1.

Confidence, in [0, 1], per pixel: the model's own (``disparity_with_confidence``: for the
networks the softmax mass within +-1 px of the estimate, ``evstereo.models.heads.confidence``;
for SGBM 1 where it matched and 0 where it did not; 1 for a model with neither), set to 0
where the left camera saw no event within ``event_radius`` pixels in the window (in the
network's pixels, so ``event_radius / scale`` on the sensor; 0: no such gate). A pixel is
*confident* when its confidence is at least ``min_confidence``.

The defaults were measured on the held-out synthetic recording (seed 901, 119 GT frames, the
shipped network; 10.7 M GT pixels, mean error 1.26 px over all): pixels with confidence in
0.40-0.45 have a mean error of 1.72 px and those below are worse still (3.4 px at 0.35-0.40),
while every band from 0.45 up stays at 0.4-1.0 px; so DEFAULT_MIN_CONFIDENCE = 0.45 (84 % of
the GT pixels kept, their mean error 0.85 px). Among those, the ones more than 5 px from any
event are worse than the average over all pixels (1.39 px at 5-8 px, 1.60 px at 8-15 px;
1.23 px at 3-5 px, 0.62-0.89 px within 3 px), so DEFAULT_EVENT_RADIUS = 5 (both together:
73 % kept, mean error 0.75 px, 1PE 15.8 % against 26.4 % over all pixels; ``apps.evaluate``
on that recording).

Why the calibrated rule comes first: a pixel-count rule alone helps where disparities grow
with the sensor's resolution (the same field of view and baseline) and hurts where they do
not: on the simulator's presets, which keep f*B within MVSEC's range, the pixel-count factor
made the shipped network worse than no scaling (dvs128: 3.25 px at x2.25 against 1.38 px at
x1; dsec: 1.94 px at x0.5 against 0.51 px).

``add_prediction_options``/``check_prediction_options`` are the apps' options for all this
(``--scale``, ``--min-event-density`` and ``--max-window-factor``: longer windows where the
events are sparse, ``evstereo.datasets.samples.SparseWindows``; ``--min-confidence``,
``--event-radius``, ``--show-all``), defined once; ``sparse_windows`` turns the two window
options into the policy.
"""

from __future__ import annotations

import argparse
from typing import Callable

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from evstereo.datasets.scaling import (SCALE_RANGE, parse_scale, resample_frames, resolve_scale_and_rule,
                                       restore_disparity, restore_map, scaled_size)
from evstereo.datasets.samples import SparseWindows
from evstereo.errors import InputError
from evstereo.models.photometric import activity_image, photometric_loss

DEFAULT_MIN_CONFIDENCE = 0.45
DEFAULT_EVENT_RADIUS = 5.0  # px at the network's scale


def is_stateful(model: object) -> bool:
    """Whether ``model`` is a network trained to stream with its membranes carried."""
    return bool(getattr(getattr(model, "config", None), "stateful", False)) and hasattr(model, "streaming")


def context_windows(model: object, left: Tensor) -> list[slice]:
    """The time slices of ``left`` [B, T, C, H, W] that a stateful network streams one by one
    (one window of ``model.time_steps`` steps each, the last one the output's); one slice of all
    steps for any other model or an input of one window."""
    steps = getattr(model, "time_steps", None)
    if not is_stateful(model) or steps is None or left.shape[1] <= steps:
        return [slice(None)]
    return [slice(t, t + steps) for t in range(0, left.shape[1], steps)]


def streamed(model: nn.Module, left: Tensor, right: Tensor, last: Callable[[Tensor, Tensor], object]):
    """``last`` on the final window of a context input, after the earlier windows went through
    ``model`` with the membranes carried (``context_windows``): what live streaming computes,
    each window costing one full output. Other models and inputs: ``last(left, right)``."""
    windows = context_windows(model, left)
    if len(windows) == 1:
        return last(left, right)
    model.streaming(True)
    try:
        for w in windows[:-1]:
            model(left[:, w], right[:, w])
        return last(left[:, windows[-1]], right[:, windows[-1]])
    finally:
        model.streaming(False)


class WithConfidence(nn.Module):
    """forward(left, right) -> (disparity, confidence) of any model: its own
    ``disparity_with_confidence``, or its forward with a confidence of 1 everywhere. A
    stateful network's context input is streamed window by window (``streamed``)."""

    def __init__(self, model: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.model = model

    def forward(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        return streamed(self.model, left, right, self._last)

    def _last(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        own = getattr(self.model, "disparity_with_confidence", None)
        if own is not None:
            return own(left, right)
        disparity = self.model(left, right)
        return disparity, torch.ones_like(disparity)


def model_scale_and_rule(model: object, option: str | float, height: int, width: int, fB: float | None = None,
                         disparity: Callable[[], float | None] | None = None) -> tuple[float, str]:
    """The input scale ``model`` runs at on a ``height`` x ``width`` sensor of rig ``fB`` (None:
    unknown) for ``option`` ("auto" or a factor), and the rule that chose it: 1 ("fixed") for
    ``native_resolution`` models, else ``resolve_scale_and_rule`` towards the model's
    ``nominal_size`` (None or missing: NOMINAL_HW), within its ``max_disparity``, with the
    recording's typical disparity from ``disparity()`` as a bound."""
    if getattr(model, "native_resolution", False):
        return 1.0, "fixed"
    return resolve_scale_and_rule(option, height, width, getattr(model, "nominal_size", None), fB, disparity,
                                  getattr(model, "max_disparity", None))


def model_scale(model: object, option: str | float, height: int, width: int, fB: float | None = None,
                disparity: Callable[[], float | None] | None = None) -> float:
    """The input scale of ``model_scale_and_rule``."""
    return model_scale_and_rule(model, option, height, width, fB, disparity)[0]


def _disc(radius: float) -> np.ndarray:
    """uint8 structuring element: the offsets (dy, dx) with dy^2 + dx^2 <= radius^2."""
    k = int(np.floor(radius))
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    return ((yy * yy + xx * xx) <= radius * radius).astype(np.uint8)


def event_support(left: Tensor | np.ndarray, radius: float) -> np.ndarray:
    """[B, H, W] bool: pixels within ``radius`` px (Euclidean) of a pixel where the [B, T, C, H, W]
    event tensor is non-zero (radius <= 0: every pixel)."""
    x = left.detach().cpu().numpy() if isinstance(left, Tensor) else np.asarray(left)
    active = np.abs(x).sum(axis=(1, 2)) > 0
    if radius <= 0:
        return np.ones_like(active)
    disc = _disc(radius)
    # a dilation by the disc: the same pixels as distance <= radius, 5x faster than a distance transform
    return np.stack([cv2.dilate(a.astype(np.uint8), disc) > 0 for a in active])


def confident(disparity: np.ndarray, confidence: np.ndarray | None, min_confidence: float) -> np.ndarray:
    """``disparity`` with NaN where the confidence is below ``min_confidence`` (None: unchanged)."""
    if confidence is None:
        return disparity
    return np.where(confidence >= min_confidence, disparity, np.nan).astype(np.float32)


class Predictor:
    """``model`` on one sensor's frames: (disparity, confidence) [B, H, W] at the sensor's size.

    ``scale`` is "auto" or a factor (see the module doc); ``self.scale`` is the factor used and
    ``self.network_size`` the (h, w) the network sees. ``compile``: torch.compile the model.

    With "auto" the rule's factor (``self.rule_scale``), unless the events bound it
    (``self.rule`` "events"), is checked on the first FIT_FRAMES frames that have events: each
    is predicted at the rule's factor times each of FIT_FACTORS, and the factor whose disparity
    best explains the two cameras' events (the lowest photometric error of the right activity
    image warped into the left, :mod:`evstereo.models.photometric`, summed over those frames;
    the rule's factor unless another is lower by more than FIT_MARGIN of it) is kept from then
    on: a live stream and an evaluation see one scale per recording after its first frames. Why:
    the rule knows the rig, not the scene; a near scene pushes disparities past what the
    network resolves (README, real-event checks: a 4-16 px plane at x2.25 had 4.0 px error,
    1.7 px for SGBM), and no ground truth is needed to see it.
    """

    FIT_FRAMES = 8
    FIT_FACTORS = (1.0, 0.8, 0.67, 0.5)
    FIT_MARGIN = 0.01

    def __init__(self, model: Callable[[Tensor, Tensor], Tensor], height: int, width: int,
                 scale: str | float = "auto", event_radius: float = DEFAULT_EVENT_RADIUS,
                 compile: bool = False, fB: float | None = None,
                 disparity: Callable[[], float | None] | None = None) -> None:
        self.model = model
        self.size = (int(height), int(width))
        typical: list[float | None] = []  # what disparity() gave, if the rule asked

        def asked() -> float | None:
            typical.append(disparity() if disparity is not None else None)
            return typical[-1]

        # rule: which one chose rule_scale, "calibration", "sensor size", "events" (their bound) or "fixed"
        rule_scale, self.rule = model_scale_and_rule(model, scale, height, width, fB, asked)
        self._set_scale(rule_scale)
        self.rule_scale = self.scale  # before the fit
        self.typical_disparity = typical[-1] if typical else None  # px, when the rule asked for it
        self.event_radius = float(event_radius)
        # the fit checks the sensor-size and calibration rules against the scene; a factor the
        # events bound already comes from the scene's disparity (on the real pendulum the fit
        # then lowered x0.65 to x0.33-0.44 and moved the prediction 1-1.5 px further from the bob's)
        fits = self.rule in ("calibration", "sensor size")
        # the rule's factor first (FIT_FACTORS[0] == 1): _fit keeps it unless another is clearly better
        self._candidates = list(dict.fromkeys(max(SCALE_RANGE[0], self.scale * f) for f in self.FIT_FACTORS)) \
            if fits else []
        self._fit_errors = np.zeros(len(self._candidates))
        self._fit_left = self.FIT_FRAMES if fits else 0
        run = WithConfidence(model)
        self._run = torch.compile(run) if compile else run

    def _set_scale(self, scale: float) -> None:
        self.scale = float(scale)
        self.network_size = scaled_size(*self.size, self.scale)

    def __call__(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        if self._fit_left > 0 and bool(left.abs().sum() > 0) and bool(right.abs().sum() > 0):
            return self._fit(left, right)
        return self._predict(left, right)

    def _fit(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        """Predict at every candidate factor, add up their photometric errors, keep the best so far."""
        left_image, right_image = activity_image(left), activity_image(right)
        outputs = []
        for i, factor in enumerate(self._candidates):
            self._set_scale(factor)
            outputs.append(self._predict(left, right))
            self._fit_errors[i] += float(photometric_loss(left_image, right_image, outputs[-1][0])[0])
        # the rule's factor (first) unless another explains the events clearly better: single
        # windows differ by ~0.5 % between factors where the rule is right (README's checks)
        best = int(np.argmin(self._fit_errors))
        if self._fit_errors[best] > (1 - self.FIT_MARGIN) * self._fit_errors[0]:
            best = 0
        self._set_scale(self._candidates[best])
        self._fit_left -= 1
        return outputs[best]

    def fit_state(self) -> tuple:
        """What the scale fit has seen so far, for ``restore_fit`` (a warm-up that must not count)."""
        return self.scale, self._fit_left, self._fit_errors.copy()

    def restore_fit(self, state: tuple) -> None:
        """Back to a ``fit_state``: the windows predicted since then do not count for the fit."""
        scale, self._fit_left, errors = state
        self._fit_errors = errors.copy()
        self._set_scale(scale)

    def network_input(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        """The two [B, T, C, H, W] tensors resampled to the network's size."""
        return (resample_frames(left, self.scale, self.network_size),
                resample_frames(right, self.scale, self.network_size))

    def _predict(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        disparity, conf = self._run(*self.network_input(left, right))
        disparity, conf = disparity.float(), conf.float()
        if tuple(disparity.shape[-2:]) != self.size:
            disparity = restore_disparity(disparity, self.size)
            conf = restore_map(conf, self.size).clamp(0, 1)
        if self.event_radius > 0:
            support = torch.from_numpy(event_support(left, self.event_radius / self.scale)).to(conf.device)
            conf = conf * support
        return disparity, conf


def add_prediction_options(ap: argparse.ArgumentParser, shown: str) -> None:
    """The apps' --scale, --min-event-density, --max-window-factor, --min-confidence, --event-radius
    and --show-all (``shown``: what --show-all changes, e.g. "examples show")."""
    ap.add_argument("--scale", default="auto", metavar="auto|FACTOR",
                    help="resample the network's input by this factor (auto, the default: the rig's disparities "
                         "towards the training rig's, or the sensor towards 346x260 without a calibration, lowered "
                         "or raised so that the recording's typical disparity lies between a quarter and half of the "
                         "network's range, then, unless that bound applied, the best of that factor x 1, 0.8, 0.67, "
                         "0.5 on the first 8 frames; 1: off)")
    ap.add_argument("--min-event-density", type=float, default=SparseWindows.min_event_density, metavar="D",
                    help="sparse input: where a camera has fewer than D events per pixel in the network's window, "
                         "the window reaches 2x, 4x, ... further back until both have "
                         f"(default {SparseWindows.min_event_density:g}; 0: always the network's window)")
    ap.add_argument("--max-window-factor", type=int, default=SparseWindows.max_window_factor, metavar="F",
                    help=f"the longest such window, in network windows (default {SparseWindows.max_window_factor})")
    ap.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE, metavar="C",
                    help=f"confident pixels: confidence >= C, in 0..1 (default {DEFAULT_MIN_CONFIDENCE:g})")
    ap.add_argument("--event-radius", type=float, default=DEFAULT_EVENT_RADIUS, metavar="PX",
                    help="confidence 0 where no event lies within PX pixels (at the network's scale; "
                         f"default {DEFAULT_EVENT_RADIUS:g}; 0: off)")
    ap.add_argument("--show-all", action="store_true", help=f"{shown} every pixel, not only the confident ones")


def check_prediction_options(args: argparse.Namespace | object) -> None:
    """InputError naming the option for a bad --scale, --min-event-density, --max-window-factor,
    --min-confidence or --event-radius; ``args.scale`` parsed. ``args``: parsed arguments, or any
    object with those attributes (``LiveOptions``)."""
    try:
        args.scale = parse_scale(args.scale)
    except ValueError as exc:
        raise InputError(None, f"--scale {args.scale}: {exc}") from None
    if not 0 <= args.min_confidence <= 1:
        raise InputError(None, f"--min-confidence {args.min_confidence:g}: must lie in 0..1")
    if args.event_radius < 0:
        raise InputError(None, f"--event-radius {args.event_radius:g}: must be 0 (off) or positive")
    if not (np.isfinite(args.min_event_density) and args.min_event_density >= 0):
        raise InputError(None, f"--min-event-density {args.min_event_density:g}: must be 0 (off) or positive")
    if args.max_window_factor < 1:
        raise InputError(None, f"--max-window-factor {args.max_window_factor}: must be 1 (off) or more")


def sparse_windows(args: argparse.Namespace | object) -> SparseWindows:
    """The ``SparseWindows`` of checked --min-event-density and --max-window-factor."""
    return SparseWindows(float(args.min_event_density), int(args.max_window_factor))
