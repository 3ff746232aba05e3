"""Augmentations that keep stereo geometry valid, on sample dicts of numpy arrays.

A crop takes the same window from both cameras and the GT. A horizontal flip mirrors both
images and swaps the cameras: the mirrored right image becomes the new left one, so the GT
must be the right camera's disparity (samples carry it as ``disparity_right``).

The sensor augmentations make the simulator's clean, dense, MVSEC-scale windows look like
what real rigs deliver (docs/method.md §10): :class:`RandomScale` resamples a sample to its
sensor's automatic input scale times a random factor (so the network learns to read the
disparities and structure sizes of every sensor, as inference resamples them,
:mod:`evstereo.datasets.scaling`); :class:`CameraRealism` gives each camera its own event
subset (sparse windows down to a few hundred events), its own background noise, and the right
camera a sub-pixel vertical offset (rectification residual). Independent crops would break the
epipolar geometry, so there are none.
"""

from __future__ import annotations

import numpy as np

from evstereo.datasets.scaling import NOMINAL_HW, auto_scale, resample_disparity, resample_frames, scaled_size

_IMAGE_KEYS = ("left", "right")
_MAP_KEYS = ("disparity", "valid", "disparity_right", "valid_right")


class RandomCrop:
    """Crop (height, width) at a random place, identically for every image and map."""

    def __init__(self, height: int, width: int):
        self.height, self.width = height, width

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        h, w = sample["disparity"].shape
        if self.height > h or self.width > w:
            raise ValueError(f"crop {self.height}x{self.width} is larger than the {h}x{w} image")
        y = int(rng.integers(0, h - self.height + 1))
        x = int(rng.integers(0, w - self.width + 1))
        out = dict(sample)
        for k in _IMAGE_KEYS:
            out[k] = sample[k][..., y : y + self.height, x : x + self.width]
        for k in _MAP_KEYS:
            if k in sample:
                out[k] = sample[k][y : y + self.height, x : x + self.width]
        return out


class HorizontalFlipSwap:
    """With probability p: mirror both cameras and swap them (needs the right camera's GT)."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        if "disparity_right" not in sample or rng.random() >= self.p:
            return sample
        out = dict(sample)
        out["left"] = np.ascontiguousarray(sample["right"][..., ::-1])
        out["right"] = np.ascontiguousarray(sample["left"][..., ::-1])
        out["disparity"] = np.ascontiguousarray(sample["disparity_right"][:, ::-1])
        out["valid"] = np.ascontiguousarray(sample["valid_right"][:, ::-1])
        out["disparity_right"] = np.ascontiguousarray(sample["disparity"][:, ::-1])
        out["valid_right"] = np.ascontiguousarray(sample["valid"][:, ::-1])
        return out


class RandomScale:
    """Resample a whole sample by its automatic scale (from its rig's ``fB`` when the sample
    has one, as at inference) times a log-uniform factor.

    Disparities scale with the image, so GT above ``max_disparity`` after scaling becomes
    invalid. The factor is raised where needed so the result still holds a ``min_size`` crop.
    With probability ``p_lowres`` the frames first pass through a coarser grid (a share in
    ``lowres`` of the output size): what a low-resolution sensor such as a DVS128 looks like
    once inference has brought it up to the network's scale.
    """

    def __init__(self, jitter: tuple[float, float] = (0.7, 1.4), max_disparity: float | None = None,
                 min_size: tuple[int, int] | None = None, nominal_hw: tuple[int, int] | None = None,
                 p_lowres: float = 0.0, lowres: tuple[float, float] = (0.4, 0.8)):
        lo, hi = float(jitter[0]), float(jitter[1])
        if not 0 < lo <= hi:
            raise ValueError(f"scale jitter must be 0 < low <= high, not {jitter!r}")
        if not 0 <= p_lowres <= 1 or not 0 < lowres[0] <= lowres[1] <= 1:
            raise ValueError(f"p_lowres must be in [0, 1] and lowres 0 < low <= high <= 1, not {p_lowres}, {lowres!r}")
        self.jitter, self.max_disparity, self.min_size = (lo, hi), max_disparity, min_size
        self.nominal_hw, self.p_lowres, self.lowres = nominal_hw, p_lowres, lowres

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        h, w = sample["disparity"].shape
        fB = sample.get("fB")  # the rig's, as inference uses it (None or NaN: unknown)
        base = auto_scale(h, w, self.nominal_hw or NOMINAL_HW, None if fB is None else float(fB))
        scale = base * float(np.exp(rng.uniform(np.log(self.jitter[0]), np.log(self.jitter[1]))))
        if self.min_size is not None:
            scale = max(scale, self.min_size[0] / h, self.min_size[1] / w)
        size = scaled_size(h, w, scale)
        if self.min_size is not None:
            size = (max(size[0], self.min_size[0]), max(size[1], self.min_size[1]))
        coarse = None
        if self.p_lowres and rng.random() < self.p_lowres:
            f = rng.uniform(*self.lowres)
            coarse = scaled_size(size[0], size[1], f)
        if size == (h, w) and coarse is None:
            return sample
        out = dict(sample)
        for k in _IMAGE_KEYS:
            x = sample[k] if coarse is None else resample_frames(sample[k], 0.0, coarse)
            out[k] = resample_frames(x, scale, size)
        for d, v in (("disparity", "valid"), ("disparity_right", "valid_right")):
            if d in sample:
                disp, valid = resample_disparity(sample[d], sample[v], scale, size)
                if self.max_disparity is not None:
                    valid = valid & (disp <= self.max_disparity)
                    disp = np.where(valid, disp, 0).astype(np.float32)
                out[d], out[v] = disp, valid
        return out


class CameraRealism:
    """Per-camera event subsets and noise, and a vertical offset of the right camera.

    With probability ``p_sparse`` a window is thinned: each camera keeps its own random share
    of its active pixels (log-uniform in ``keep``, the two shares differing by up to ~30 %),
    so the two views hold independent event subsets, down to a few hundred events. With
    ``p_noise`` each camera gets its own background events (a log-uniform share in
    ``noise_fraction`` of its pixels per channel set to +-1). With ``p_offset`` the right
    image moves vertically by up to ``max_offset_px`` (bilinear, so sub-pixel), as a small
    rectification error does. Thinning acts on active pixels of the frames (one pixel may
    hold several events of a bin), which matches event thinning where events are sparse.
    """

    def __init__(self, p_sparse: float = 0.3, keep: tuple[float, float] = (0.02, 1.0), p_noise: float = 0.3,
                 noise_fraction: tuple[float, float] = (1e-4, 1e-2), p_offset: float = 0.3,
                 max_offset_px: float = 1.0):
        self.p_sparse, self.keep, self.p_noise = p_sparse, keep, p_noise
        self.noise_fraction, self.p_offset, self.max_offset_px = noise_fraction, p_offset, max_offset_px

    @staticmethod
    def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
        return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))

    def _camera(self, frames: np.ndarray, keep: float | None, rng: np.random.Generator) -> np.ndarray:
        x = np.array(frames, np.float32, copy=True)
        if keep is not None and keep < 1:
            x[rng.random(x.shape) >= keep] = 0
        if rng.random() < self.p_noise:
            frac = self._log_uniform(rng, self.noise_fraction)
            hit = rng.random(x.shape) < frac
            x[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 1.0, -1.0)
        return x

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        out = dict(sample)
        keep = self._log_uniform(rng, self.keep) if rng.random() < self.p_sparse else None
        for k in _IMAGE_KEYS:
            k_cam = None if keep is None else min(1.0, keep * float(np.exp(rng.uniform(-0.3, 0.3))))
            out[k] = self._camera(sample[k], k_cam, rng)
        if rng.random() < self.p_offset:
            out["right"] = vertical_shift(out["right"], rng.uniform(-self.max_offset_px, self.max_offset_px))
        return out


def vertical_shift(frames: np.ndarray, dy: float) -> np.ndarray:
    """Frames [..., H, W] moved down by ``dy`` pixels (fractions interpolated, zeros enter)."""
    whole = int(np.floor(dy))
    frac = np.float32(dy - whole)

    def shift(x: np.ndarray, n: int) -> np.ndarray:
        out = np.zeros_like(x)
        h = x.shape[-2]
        if abs(n) < h:
            if n >= 0:
                out[..., n:, :] = x[..., : h - n, :]
            else:
                out[..., : h + n, :] = x[..., -n:, :]
        return out

    a = shift(frames, whole)
    return a if frac == 0 else (1 - frac) * a + frac * shift(frames, whole + 1)


class Compose:
    def __init__(self, transforms: list):
        self.transforms = transforms

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample
