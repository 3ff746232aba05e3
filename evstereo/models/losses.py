"""Stereo losses over valid pixels: smooth-L1 on disparity, sub-pixel cross-entropy on levels.

The sub-pixel cross-entropy (as the MVSEC peers train) compares softmax(cost) with a target
distribution that is a discretised Laplacian centred on the true (sub-pixel) disparity; with
the local-softmax read-out its optimum is the true disparity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean smooth-L1 over valid pixels (0 when none are valid, still differentiable)."""
    if valid.sum() == 0:
        return pred.sum() * 0.0
    return F.smooth_l1_loss(pred[valid], target[valid])


def subpixel_target(target: torch.Tensor, levels: int, scale: float = 1.0) -> torch.Tensor:
    """[B, H, W] disparity -> [B, D, H, W] Laplacian distribution over levels 0..D-1."""
    lv = torch.arange(levels, device=target.device, dtype=target.dtype).view(1, -1, 1, 1)
    logits = -(lv - target.unsqueeze(1)).abs() / scale
    return F.softmax(logits, dim=1)


def subpixel_cross_entropy(cost: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                           scale: float = 1.0) -> torch.Tensor:
    """Cross-entropy between softmax(cost) [B, D, H, W] and the sub-pixel target, valid pixels only."""
    if valid.sum() == 0:
        return cost.sum() * 0.0
    logp = F.log_softmax(cost, dim=1)
    q = subpixel_target(target, cost.shape[1], scale)
    ce = -(q * logp).sum(1)
    return ce[valid].mean()
