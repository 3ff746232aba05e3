"""Disparity read-outs from a cost [B, D, H, W] over D disparity levels (level i = i px).

``soft_argmin``: expectation of the disparity under softmax(cost) (GC-Net/LEAStereo).
``local_softmax``: the MVSEC peers' read-out for the sub-pixel cross-entropy loss: take the
most likely level, then the softmax-weighted mean over a window of +-radius levels around
it, renormalised, so a second mode far away cannot pull the estimate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_argmin(cost: torch.Tensor) -> torch.Tensor:
    """[B, D, H, W] scores (higher = more likely) -> [B, H, W] disparity in [0, D - 1]."""
    prob = F.softmax(cost, dim=1)
    levels = torch.arange(cost.shape[1], device=cost.device, dtype=prob.dtype).view(1, -1, 1, 1)
    return (prob * levels).sum(1)


def local_softmax(cost: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """[B, D, H, W] scores -> [B, H, W] disparity from a softmax restricted around the arg max."""
    d = cost.shape[1]
    best = cost.argmax(dim=1, keepdim=True)  # [B, 1, H, W]
    levels = torch.arange(d, device=cost.device).view(1, -1, 1, 1)
    window = (levels - best).abs() <= radius
    masked = cost.masked_fill(~window, float("-inf"))
    prob = F.softmax(masked, dim=1)
    return (prob * levels.to(prob.dtype)).sum(1)


HEADS = {"soft_argmin": soft_argmin, "local_softmax": local_softmax}
