"""Concatenation cost volume (LEAStereo style) over disparity levels at feature resolution."""

from __future__ import annotations

import torch


def concat_cost_volume(left: torch.Tensor, right: torch.Tensor, levels: int) -> torch.Tensor:
    """[..., C, H, W] left/right features -> [..., 2C, levels, H, W].

    Level d pairs left pixel x with right pixel x - d; where x - d falls off the image both
    halves are zero (LEAStereo's convention), so the matching net sees "no match possible".
    Leading dimensions (batch, time steps) are kept.
    """
    if left.shape != right.shape:
        raise ValueError(f"left and right features differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}")
    *lead, c, h, w = left.shape
    vol = left.new_zeros(*lead, 2 * c, levels, h, w)
    for d in range(levels):
        if d >= w:
            break
        vol[..., :c, d, :, d:] = left[..., d:]
        vol[..., c:, d, :, d:] = right[..., : w - d]
    return vol
