"""The live viewer's drawing and window: the composite picture, the OpenCV window and its keys.

``compose_view`` is pure (numpy in, BGR image out) so its layout can be checked without a
window. Panels have the sensor's size (scaled up for small sensors such as the DVS128)::

    without GT:   left events |        | right events      with GT:   left events |        | right events | overlay
                  prediction  | legend | overlay                      prediction  | legend | GT           | error

The prediction and GT panels show depth (coloured by inverse depth, with ``depth_legend``)
when f*B is known, otherwise disparity (with ``disparity_legend``); the live session passes
the prediction with its non-confident pixels masked (black) and says so in the panel's
caption, while the error panel shows every GT pixel's error. The overlay panel holds the
status text: time, FPS, latency, speed, running metrics (``evstereo.metrics``' names and units).
``evaluation_example`` is the picture of one evaluated frame (predictions, ground truth and
errors, with their colour bars). ``LiveWindow`` is the OpenCV window and ``KEYS`` what its keys
mean; what the keys act on (the replay clock, the running metrics) is ``evstereo.live.controls``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from evstereo.viz.colors import (LEGEND_WIDTH, colorize_depth, colorize_disparity, colorize_error, depth_legend,
                                 disparity_legend, error_legend, label)

MIN_PANEL_HEIGHT = 240  # smaller sensors are scaled up by an integer factor so text stays readable
MAX_COMPOSITE_WIDTH = 1800  # larger composites (DSEC with GT) are scaled down to fit a screen
BACKGROUND_LEVEL = 32  # a grey, so that a panel fills as one byte (``_blank``)
BACKGROUND = (BACKGROUND_LEVEL,) * 3
WINDOW_NAME = "evstereo live depth"


# --- layout -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where each panel sits in the composite: name -> (x, y, width, height) in pixels."""

    width: int
    height: int
    panels: dict[str, tuple[int, int, int, int]]
    scale: float


def view_scale(height: int, width: int, with_gt: bool) -> float:
    """Panel scale for a sensor: integer upscale of small sensors, downscale of very wide composites."""
    s = float(max(1, math.ceil(MIN_PANEL_HEIGHT / height)))
    cols = 3 if with_gt else 2
    total = cols * width * s + LEGEND_WIDTH
    if total > MAX_COMPOSITE_WIDTH:
        s = (MAX_COMPOSITE_WIDTH - LEGEND_WIDTH) / (cols * width)
    return s


def view_layout(height: int, width: int, with_gt: bool, scale: float | None = None) -> Layout:
    """The composite's layout for an (height, width) sensor, with or without the GT panels."""
    s = view_scale(height, width, with_gt) if scale is None else scale
    ph, pw = int(round(height * s)), int(round(width * s))
    # the legend sits right of the prediction (and left of GT, same colours); the columns
    # above and below line up, leaving a legend-wide gap between the event panels
    c1, c2 = pw + LEGEND_WIDTH, 2 * pw + LEGEND_WIDTH
    panels = {
        "left": (0, 0, pw, ph), "right": (c1, 0, pw, ph),
        "prediction": (0, ph, pw, ph), "legend": (pw, ph, LEGEND_WIDTH, ph),
    }
    if with_gt:
        panels.update({"overlay": (c2, 0, pw, ph), "gt": (c1, ph, pw, ph), "error": (c2, ph, pw, ph)})
        size = (3 * pw + LEGEND_WIDTH, 2 * ph)
    else:
        panels["overlay"] = (c1, ph, pw, ph)
        size = (2 * pw + LEGEND_WIDTH, 2 * ph)
    return Layout(size[0], size[1], panels, s)


# --- panels -------------------------------------------------------------------------------
def _blank(h: int, w: int) -> np.ndarray:
    """An (h, w) BGR picture of BACKGROUND, a grey filled as one byte (a memset): numpy fills with
    a 3-tuple pixel by pixel, 60x slower (1.7 ms for a 1100x520 composite, per frame)."""
    return np.full((h, w, 3), BACKGROUND_LEVEL, np.uint8)


def _fit(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[1] == w and img.shape[0] == h:
        return img
    up = w >= img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST if up else cv2.INTER_AREA)


def _text_panel(w: int, h: int, lines: Sequence[str]) -> np.ndarray:
    """Dark panel with one line of text per entry (the overlay)."""
    img = _blank(h, w)
    fs = 0.5 if w >= 300 else 0.4
    step = int(22 * fs / 0.5)
    for i, line in enumerate(lines):
        y = 20 + i * step
        if y > h - 4:
            break
        cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, fs, (235, 235, 235), 1, cv2.LINE_AA)
    return img


def disparity_error(prediction: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """|prediction - gt| (px) where GT is valid, NaN elsewhere; invalid predictions count as 0 px."""
    pred = np.nan_to_num(np.asarray(prediction, np.float32), nan=0.0)
    return np.where(np.isfinite(gt), np.abs(pred - np.nan_to_num(gt)), np.nan).astype(np.float32)


def compose_view(left_events: np.ndarray, right_events: np.ndarray, disparity: np.ndarray,
                 gt_disparity: np.ndarray | None = None, fB: float | None = None,
                 overlay: Sequence[str] = (), *, with_gt: bool | None = None,
                 max_disparity: float = 64.0, min_depth: float = 0.5, max_depth: float = 10.0,
                 max_error: float = 3.0, scale: float | None = None,
                 prediction_bgr: np.ndarray | None = None, prediction_caption: str | None = None) -> np.ndarray:
    """Build the composite BGR image from one frame's pieces (see the module doc for the layout).

    ``left_events``/``right_events`` are (H, W, 3) BGR event pictures, ``disparity`` and
    ``gt_disparity`` (H, W) float px with NaN invalid. ``with_gt`` fixes the layout (default:
    whether ``gt_disparity`` is given); a GT layout without GT for this frame shows empty
    GT/error panels, so every frame of a run has the same size (a video needs that).
    ``prediction_bgr``: the prediction already coloured the same way (saves colouring it twice);
    ``prediction_caption``: its caption (default "predicted depth" or "predicted disparity").
    """
    h, w = disparity.shape
    with_gt = gt_disparity is not None if with_gt is None else with_gt
    lay = view_layout(h, w, with_gt, scale)
    out = _blank(lay.height, lay.width)

    def put(name: str, img: np.ndarray, caption: str | None = None) -> None:
        x, y, pw, ph = lay.panels[name]
        img = _fit(img, pw, ph)
        if caption:
            img = label(img, caption)
        out[y : y + ph, x : x + pw] = img

    def colour(d: np.ndarray) -> np.ndarray:
        if fB:
            with np.errstate(divide="ignore", invalid="ignore"):
                return colorize_depth(np.float32(fB) / d, min_depth, max_depth)
        return colorize_disparity(d, max_disparity)

    put("left", left_events, "left events")
    put("right", right_events, "right events")
    caption = prediction_caption or ("predicted depth" if fB else "predicted disparity")
    put("prediction", colour(disparity) if prediction_bgr is None else prediction_bgr, caption)
    ph = lay.panels["legend"][3]
    put("legend", depth_legend(ph, min_depth, max_depth) if fB else disparity_legend(ph, max_disparity))
    if with_gt:
        if gt_disparity is not None:
            put("gt", colour(gt_disparity), "ground truth")
            err = disparity_error(disparity, gt_disparity)
            put("error", colorize_error(err, max_error), f"|error| 0-{max_error:g}px")
        else:
            blank = _blank(h, w)
            put("gt", blank, "no ground truth at this time")
            put("error", blank, "error: -")
    x, y, pw, ph = lay.panels["overlay"]
    out[y : y + ph, x : x + pw] = _text_panel(pw, ph, overlay)
    return out


def evaluation_example(left_events: np.ndarray, predictions: dict[str, np.ndarray], gt_disparity: np.ndarray,
                       max_disparity: float, max_error: float = 3.0) -> np.ndarray:
    """One evaluated frame as a picture (``apps.evaluate``'s examples)::

        prediction(s) ... | ground truth | disparity legend (px)
        left events       | |error| ...  | error legend (px)

    ``predictions`` maps a name ("model", "sgbm") to its (H, W) disparity in px; ``gt_disparity``
    has NaN where the ground truth is not valid (no error is shown there).
    """
    h = gt_disparity.shape[0]
    top = [label(colorize_disparity(d, max_disparity), f"{name} disparity") for name, d in predictions.items()]
    top.append(label(colorize_disparity(gt_disparity, max_disparity), "ground truth"))
    bottom = [label(left_events, "left events")]
    bottom += [label(colorize_error(disparity_error(d, gt_disparity), max_error), f"{name} |error|")
               for name, d in predictions.items()]
    top.append(disparity_legend(h, float(max_disparity)))
    bottom.append(error_legend(h, float(max_error)))
    return np.vstack([np.hstack(top), np.hstack(bottom)])


# --- the window ---------------------------------------------------------------------------
KEYS = {
    ord(" "): "pause", ord("n"): "step", ord("."): "step", ord("+"): "faster", ord("="): "faster",
    ord("-"): "slower", ord("_"): "slower", ord("s"): "snapshot", ord("q"): "quit", 27: "quit",
}
HELP = "space pause | n/. step | +/- speed | s snapshot | q/Esc quit"


def display_available() -> bool:
    """Whether a window can open: WAYLAND_DISPLAY, or a DISPLAY whose local X socket exists.

    Qt aborts the process when it cannot reach the display, so check before trying.
    """
    if os.environ.get("WAYLAND_DISPLAY"):
        return True
    disp = os.environ.get("DISPLAY", "")
    if not disp:
        return False
    if disp.startswith(":"):  # local display ":N[.S]": its socket must exist
        num = disp[1:].split(".")[0]
        return num.isdigit() and Path(f"/tmp/.X11-unix/X{num}").exists()
    return True  # remote or forwarded (host:N): let the toolkit try


class LiveWindow:
    """The OpenCV window: shows composites, turns key presses into actions ("pause", "quit", ...)."""

    def __init__(self, name: str = WINDOW_NAME) -> None:
        self.name = name
        # GUI_NORMAL: no Qt toolbar, so the window shows exactly the composite's pixels
        cv2.namedWindow(name, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        self.closed = False

    def show(self, image: np.ndarray) -> None:
        cv2.imshow(self.name, image)

    def poll(self, wait_ms: int = 1) -> str | None:
        """Process window events for ``wait_ms``; the action of a pressed key, "quit" when the window was closed."""
        key = cv2.waitKey(max(1, wait_ms))
        try:
            if cv2.getWindowProperty(self.name, cv2.WND_PROP_VISIBLE) < 1:
                self.closed = True
                return "quit"
        except cv2.error:
            self.closed = True
            return "quit"
        return KEYS.get(key & 0xFF) if key >= 0 else None

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.name)
            cv2.waitKey(1)
        except cv2.error:
            pass
