"""Classical baseline: OpenCV's semi-global block matching on event images.

``SGBMStereo`` takes the same input as the spiking networks, [B, T, C, H, W] event tensors
of any representation, collapses each camera's window to an 8-bit event image (summed
|values| over T and C, square-root compressed, normalised by a scale shared by the pair,
lightly blurred so sparse events give the matcher some texture) and runs ``cv2.StereoSGBM``.
It is the ``--baseline sgbm`` of the evaluation and the stand-in model of the live viewer
until the trained network ships.

Invalid pixels (no match, failed uniqueness or left-right check, and the left border where
the full disparity range does not fit) are filled per scanline with the *smaller* of the
nearest valid disparities to their left and right (the background, as the KITTI devkit
interpolates sparse results), so the output is dense; rows with no valid pixel are 0, which
downstream code treats as invalid. ``fill="none"`` leaves every invalid pixel at 0 instead.
``disparity_with_confidence`` gives the same disparity and a confidence of 1 where SGBM itself
matched and 0 where it did not (the filled pixels): its invalid pixels are its non-confident ones.
It runs at the sensor's own resolution (``native_resolution``: inference never resamples its input).

Like a network it owns its ``input_spec`` (``evstereo.events.input_spec.InputSpec``; default
SBT, 5 bins, one step, 50 ms): the event tensors it is fed are built from it. Any spec works;
evaluation passes the network's so that both score the same frames.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from evstereo.events.input_spec import InputSpec

FILLS = ("background", "none")


def event_images(x: torch.Tensor | np.ndarray, scale: float | None = None, blur_sigma: float = 1.0,
                 percentile: float = 99.0) -> tuple[np.ndarray, float]:
    """[B, T, C, H, W] (or [T, C, H, W]) event tensor -> ([B, H, W] uint8 images, scale used).

    Activity is sum |value| over T and C, square-root compressed (a few very active pixels
    would otherwise flatten everything else), divided by ``scale`` (default: the given
    percentile of the non-zero activity) and mapped to 0..255.
    """
    a = x.detach().abs().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.abs(np.asarray(x, np.float32))
    if a.ndim == 4:
        a = a[None]
    if a.ndim != 5:
        raise ValueError(f"expected an event tensor [B, T, C, H, W], got shape {a.shape}")
    act = np.sqrt(a.sum(axis=(1, 2)))
    if scale is None:
        nz = act[act > 0]
        scale = float(np.percentile(nz, percentile)) if nz.size else 1.0
    img = np.clip(act / max(scale, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    if blur_sigma > 0:
        img = np.stack([cv2.GaussianBlur(im, (0, 0), blur_sigma) for im in img])
    return img, scale


def fill_invalid_scanline(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid pixels of each row with min(nearest valid left, nearest valid right); 0 if the row has none."""
    d = np.where(valid, disparity, 0).astype(np.float32)
    h, w = d.shape
    cols = np.arange(w)[None, :].repeat(h, 0)
    # index of the nearest valid pixel at or left of each column (-1: none), and at or right (w: none)
    left = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    inf = np.float32(np.inf)
    dl = np.where(left >= 0, d[rows, np.clip(left, 0, w - 1)], inf)
    dr = np.where(right < w, d[rows, np.clip(right, 0, w - 1)], inf)
    filled = np.minimum(dl, dr)
    filled[~np.isfinite(filled)] = 0
    return np.where(valid, d, filled).astype(np.float32)


class SGBMStereo(torch.nn.Module):
    """OpenCV StereoSGBM on event images; forward(left, right) -> disparity [B, H, W] in [0, max_disparity].

    Accepts any representation and time steps (``time_steps``/``in_channels`` are None);
    ``input_spec`` says which it is fed. ``max_disparity`` is its search range in px. Runs on
    the CPU whatever the input device; the result goes back to the input's device.
    """

    time_steps = None
    in_channels = None
    native_resolution = True  # a baseline matches the sensor's own pixels (no input scale)

    # Defaults picked on a synthetic MVSEC-like recording: larger blocks and the background
    # fill help most on sparse event images (mean error 2.9 -> 1.4 px against no fill).
    def __init__(self, max_disparity: int = 63, block_size: int = 9, blur_sigma: float = 1.0,
                 uniqueness_ratio: int = 10, speckle_window: int = 100, speckle_range: int = 2,
                 disp12_max_diff: int = 1, mode: int = cv2.STEREO_SGBM_MODE_SGBM, fill: str = "background",
                 input_spec: InputSpec | None = None):
        super().__init__()
        self.input_spec = InputSpec() if input_spec is None else input_spec
        if max_disparity < 1:
            raise ValueError("max_disparity must be at least 1")
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, not {fill!r}")
        self.max_disparity = int(max_disparity)
        self.num_disparities = 16 * math.ceil((self.max_disparity + 1) / 16)  # covers 0 .. max_disparity
        self.blur_sigma, self.fill = blur_sigma, fill
        # P1/P2 as OpenCV's docs recommend for one channel: 8 and 32 x block area
        self.matcher = cv2.StereoSGBM_create(
            minDisparity=0, numDisparities=self.num_disparities, blockSize=block_size,
            P1=8 * block_size**2, P2=32 * block_size**2, disp12MaxDiff=disp12_max_diff,
            uniquenessRatio=uniqueness_ratio, speckleWindowSize=speckle_window, speckleRange=speckle_range,
            preFilterCap=31, mode=mode)

    def extra_repr(self) -> str:
        return f"max_disparity={self.max_disparity}, num_disparities={self.num_disparities}, fill={self.fill!r}"

    def match_with_validity(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Two (H, W) uint8 images -> ((H, W) float32 disparity, invalid pixels filled or 0;
        (H, W) bool, where SGBM found a match: not a uniqueness, left-right or border failure)."""
        raw = self.matcher.compute(left, right)  # int16, 4 fractional bits, invalid = (minDisparity - 1) * 16
        valid = raw >= 0
        d = raw.astype(np.float32) / 16.0
        d = fill_invalid_scanline(d, valid) if self.fill == "background" else np.where(valid, d, 0).astype(np.float32)
        return np.clip(d, 0, self.max_disparity), valid

    def match(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Two (H, W) uint8 images -> (H, W) float32 disparity (invalid pixels filled or 0)."""
        return self.match_with_validity(left, right)[0]

    @torch.no_grad()
    def disparity_with_confidence(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(disparity [B, H, W] as ``forward`` gives it, confidence [B, H, W]: 1 matched, 0 not)."""
        if left.shape != right.shape or left.dim() != 5:
            raise ValueError(f"expected two [B, T, C, H, W] tensors of one shape, "
                             f"got {tuple(left.shape)} and {tuple(right.shape)}")
        disparity, valid = [], []
        for b in range(left.shape[0]):
            # one scale for both cameras of a sample: the matcher compares brightness
            (il, ir), _ = event_images(torch.stack([left[b], right[b]]), blur_sigma=self.blur_sigma)
            d, v = self.match_with_validity(il, ir)
            disparity.append(d)
            valid.append(v)
        return (torch.from_numpy(np.stack(disparity)).to(left.device),
                torch.from_numpy(np.stack(valid).astype(np.float32)).to(left.device))

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.disparity_with_confidence(left, right)[0]
