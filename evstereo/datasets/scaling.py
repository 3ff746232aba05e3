"""Input scale: resample event frames to the resolution the network works at, and disparities back.

A stereo network learns a range of disparities and of structure sizes in pixels. Resampling
the input by ``s`` multiplies disparities by ``s``, so the network sees the scale it was
trained at; the prediction is resampled back and divided by ``s``. The automatic factor:

* with a calibration (f*B known), ``s = NOMINAL_FB / fB``: disparity is f*B / Z, so this
  brings the rig's disparities at a given depth to those of the MVSEC rig the network is
  trained around (indoor depth ranges assumed, 0.6-10 m). A 640x480 rig with a 0.6 m
  baseline (f*B ~ 350 px*m) shrinks, a short-baseline DVS128 (f*B ~ 9) grows;
* without one (a converted recording with no calibration), the pixel-count rule
  ``s = sqrt(260*346 / (H*W))``: a 128x128 DVS128 sees about 2.3x fewer pixels per degree
  than the DAVIS346, so for the same field of view and baseline its disparities and edges are
  2.3x smaller (x2.25); a 640x480 camera's 1.8x larger (x0.5);
* either capped by the scene: where the recording's typical disparity D
  (``evstereo.recordings.shift``: where the two cameras' event images correlate best, the
  median over windows across the recording) would pass half the network's ``max_disparity``,
  the factor is ``max_disparity / 2 / D``, leaving the other half for nearer objects. A rule
  knows the rig, not the scene: the real DVS128 pendulum, about 30 cm away and with no
  calibration, shows 18-38 px (D = 26); x2.25 put it at 40-85 px, past the 36 px the shipped
  network resolves, and it answered about 4 px everywhere; capped, x0.65;
* and raised where D would stay under a quarter of ``max_disparity`` (the MVSEC rig's own
  typical disparity, 9 px for the shipped network), towards that quarter, up to an input of
  twice the nominal pixel count: a distant scene's 1-3 px disparities fall within the first
  of the network's 3 px cost levels (a randomised DAVIS240 validation recording, D = 1 px:
  3.75 px mean error at x1, 2.08 px at x2).

The same functions serve training (multi-scale augmentation: each recording at its automatic
scale times a random factor) and inference (the automatic scale), so both see identical
resampling. Frames are resampled bilinearly, with antialiasing when shrinking (several input
pixels then fall on one output pixel, as on a coarser sensor). Ground-truth disparity is
resampled by nearest neighbour, so no invalid pixel leaks into a valid one.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

# the rule itself is geometry (torch-free, so recordings can use it too); re-exported here
from evstereo.geometry import (NOMINAL_FB, NOMINAL_HW, SCALE_RANGE, SCALE_STEP, auto_scale,  # noqa: F401
                               auto_scale_and_rule)

def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Size of a ``height`` x ``width`` image resampled by ``scale`` (at least 1 x 1)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def resample_frames(frames: torch.Tensor | np.ndarray, scale: float,
                    size: tuple[int, int] | None = None) -> torch.Tensor | np.ndarray:
    """Resample the last two (H, W) axes of event frames by ``scale`` (or to ``size``).

    Returns the input's type (numpy float32 for numpy input); scale 1 returns it unchanged.
    """
    h, w = frames.shape[-2:]
    size = size or scaled_size(h, w, scale)
    if tuple(size) == (h, w):
        return frames
    is_numpy = isinstance(frames, np.ndarray)
    x = torch.from_numpy(np.ascontiguousarray(frames, np.float32)) if is_numpy else frames
    lead = x.shape[:-2]
    flat = x.reshape(1, -1, h, w)
    shrink = size[0] < h or size[1] < w
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    out = out.reshape(*lead, *size)
    return out.numpy() if is_numpy else out


def resample_disparity(disparity: np.ndarray, valid: np.ndarray, scale: float,
                       size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth for frames resampled by ``scale``: nearest-neighbour maps, disparity x scale.

    The scale actually applied per axis is size/original; the horizontal one multiplies
    the disparity (rows and columns differ only by rounding)."""
    h, w = disparity.shape
    size = size or scaled_size(h, w, scale)
    if tuple(size) == (h, w):
        return disparity, valid
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    sx = size[1] / w
    out_valid = valid[rows[:, None], cols[None, :]]
    out = np.where(out_valid, disparity[rows[:, None], cols[None, :]] * sx, 0).astype(np.float32)
    return out, out_valid


def restore_map(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A per-pixel map [B, h, w] (e.g. a confidence) on resampled frames -> [B, H, W] at the
    sensor's ``size``, bilinearly."""
    if tuple(values.shape[-2:]) == tuple(size):
        return values
    return F.interpolate(values.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def restore_disparity(disparity: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A disparity map [B, h, w] predicted on resampled frames -> [B, H, W] at the sensor's
    ``size``, in the sensor's pixels (divided by the horizontal scale)."""
    return restore_map(disparity, size) * (size[1] / disparity.shape[-1])


def parse_scale(text: str | float) -> str | float:
    """A ``--scale`` value: "auto", or a positive factor within SCALE_RANGE (ValueError otherwise)."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        s = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"scale must be 'auto' or a number, not {text!r}") from None
    if not SCALE_RANGE[0] <= s <= SCALE_RANGE[1]:
        raise ValueError(f"scale {s:g} is outside {SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g}")
    return s


def resolve_scale_and_rule(option: str | float, height: int, width: int,
                           nominal_hw: tuple[int, int] | None = None, fB: float | None = None,
                           disparity: Callable[[], float | None] | None = None,
                           max_disparity: float | None = None) -> tuple[float, str]:
    """The factor for a ``height`` x ``width`` sensor of rig ``fB`` (None: unknown), and which rule
    chose it: ``auto_scale_and_rule`` towards ``nominal_hw`` (None: NOMINAL_HW) for "auto", else
    the given factor ("fixed"). ``disparity``: gives the recording's typical disparity from its
    events (e.g. ``Recording.typical_disparity``), called only for "auto" when ``max_disparity``
    (the network's) is known."""
    option = parse_scale(option)
    if option != "auto":
        return float(option), "fixed"
    typical = disparity() if disparity is not None and max_disparity else None
    return auto_scale_and_rule(height, width, tuple(nominal_hw) if nominal_hw else NOMINAL_HW, fB, typical,
                               max_disparity)


def resolve_scale(option: str | float, height: int, width: int, nominal_hw: tuple[int, int] | None = None,
                  fB: float | None = None, disparity: Callable[[], float | None] | None = None,
                  max_disparity: float | None = None) -> float:
    """The factor of ``resolve_scale_and_rule``."""
    return resolve_scale_and_rule(option, height, width, nominal_hw, fB, disparity, max_disparity)[0]
