"""Augmentations that keep stereo geometry valid, on sample dicts of numpy arrays.

A crop takes the same window from both cameras and the GT. A horizontal flip mirrors both
images and swaps the cameras: the mirrored right image becomes the new left one, so the GT
must be the right camera's disparity (samples carry it as ``disparity_right``). Vertical
shifts or independent crops would break the epipolar geometry, so there are none.
"""

from __future__ import annotations

import numpy as np

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


class Compose:
    def __init__(self, transforms: list):
        self.transforms = transforms

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        for t in self.transforms:
            sample = t(sample, rng)
        return sample
