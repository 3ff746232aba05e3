"""Disparity read-outs from a cost [B, D, H, W] over D disparity levels (level i = i px).

``soft_argmin``: expectation of the disparity under softmax(cost) (GC-Net/LEAStereo).
``local_softmax``: the MVSEC peers' read-out for the sub-pixel cross-entropy loss: take the
most likely level, then the softmax-weighted mean over a window of +-radius levels around
it, renormalised, so a second mode far away cannot pull the estimate.

``confidence``: how sure the matching is of an estimate, in [0, 1]: the probability mass of
softmax(cost) within +-``CONFIDENCE_RADIUS`` px of it, each level's mass spread evenly over
its pixel-wide bin [i - 0.5, i + 0.5] (so the window always spans 2 px of levels and the value
varies smoothly with the estimate). A single sharp peak gives 1, a flat cost over D levels
about 2 / D, two far-apart modes about the weight of the one the estimate sits on (the
soft-argmin of two modes sits between them and gets little of either).
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


CONFIDENCE_RADIUS = 1.0  # px either side of the estimate


def confidence(cost: torch.Tensor, disparity: torch.Tensor, radius: float = CONFIDENCE_RADIUS) -> torch.Tensor:
    """[B, D, H, W] scores and the [B, H, W] disparity read from them -> [B, H, W] confidence in [0, 1]."""
    prob = F.softmax(cost, dim=1)
    levels = torch.arange(cost.shape[1], device=cost.device, dtype=prob.dtype).view(1, -1, 1, 1)
    d = disparity.unsqueeze(1).to(prob.dtype)
    # overlap of level i's bin [i - 0.5, i + 0.5] with the window [d - radius, d + radius]
    overlap = (torch.minimum(levels + 0.5, d + radius) - torch.maximum(levels - 0.5, d - radius)).clamp(0, 1)
    return (prob * overlap).sum(1).clamp(0, 1)


HEADS = {"soft_argmin": soft_argmin, "local_softmax": local_softmax}
