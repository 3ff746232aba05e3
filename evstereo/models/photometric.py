"""How well a disparity explains two event images: warp one view into the other, compare.

The photometric half of self-supervised stereo (:mod:`evstereo.training.selfsup` adds the
smoothness and left-right terms and trains with them) and the inference-time check of the
input scale (:class:`evstereo.inference.prediction.Predictor`, "auto"). Torch only.

Shapes and units: images [B, C, H, W] in 0..1 (blurred event images), disparities [B, H, W]
in px of the left view, positive: left pixel x sees what the right camera sees at x - d.
Masks [B, H, W] bool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def activity_image(frames: Tensor, sigma: float = 1.5) -> Tensor:
    """An event tensor [B, T, C, H, W] as a blurred activity image [B, 1, H, W] in 0..1: the
    absolute sum over time and channels, Gaussian-blurred by ``sigma`` px, divided by its 98th
    percentile over active pixels (clipped), so that images of different densities compare."""
    a = frames.abs().sum(dim=(1, 2), keepdim=False).unsqueeze(1).float()
    if sigma > 0:
        r = max(1, int(3 * sigma + 0.5))
        x = torch.arange(-r, r + 1, dtype=a.dtype, device=a.device)
        k = torch.exp(-0.5 * (x / sigma) ** 2)
        k = k / k.sum()
        a = F.conv2d(F.pad(a, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        a = F.conv2d(F.pad(a, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    out = torch.zeros_like(a)
    for i in range(a.shape[0]):
        active = a[i][a[i] > 0]
        if active.numel():
            out[i] = (a[i] / (torch.quantile(active, 0.98) + 1e-6)).clamp(0, 1)
    return out


def warp(image: Tensor, disparity: Tensor) -> tuple[Tensor, Tensor]:
    """``image`` (the other view, [B, C, H, W]) sampled at x - disparity: (warped [B, C, H, W],
    inside [B, H, W], where the sample lies in the image). Bilinear, zeros outside."""
    b, _, h, w = image.shape
    xs = torch.arange(w, device=image.device, dtype=disparity.dtype).view(1, 1, w) - disparity
    ys = torch.arange(h, device=image.device, dtype=disparity.dtype).view(1, h, 1).expand_as(xs)
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    grid = torch.stack([2 * xs / max(w - 1, 1) - 1, 2 * ys / max(h - 1, 1) - 1], dim=-1)
    warped = F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)
    return warped, (xs >= 0) & (xs <= w - 1)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` [B, H, W] over ``mask``; 0 (still differentiable) for an empty mask."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp(min=1.0)


def _box3(x: Tensor) -> Tensor:
    """3x3 means of the valid neighbourhoods (output 2 px smaller); as avg_pool2d(x, 3, 1), 3x faster on CPU."""
    h = x[..., :, :-2] + x[..., :, 1:-1] + x[..., :, 2:]
    return (h[..., :-2, :] + h[..., 1:-1, :] + h[..., 2:, :]) / 9


def _ssim_distance(a: Tensor, b: Tensor) -> Tensor:
    """(1 - SSIM) / 2 per pixel over 3x3 neighbourhoods, [B, C, H, W] in 0..1 (Monodepth's)."""
    c1, c2 = 0.01**2, 0.03**2
    a, b = F.pad(a, (1, 1, 1, 1), mode="reflect"), F.pad(b, (1, 1, 1, 1), mode="reflect")
    mu_a, mu_b = _box3(a), _box3(b)
    var_a = _box3(a * a) - mu_a**2
    var_b = _box3(b * b) - mu_b**2
    cov = _box3(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ((1 - ssim) / 2).clamp(0, 1)


def photometric_error(target: Tensor, warped: Tensor, ssim: float = 0.85) -> Tensor:
    """Per-pixel dissimilarity [B, H, W]: ``ssim`` x SSIM distance + (1 - ``ssim``) x L1, channel mean."""
    err = (target - warped).abs()
    if ssim > 0:
        err = ssim * _ssim_distance(target, warped) + (1 - ssim) * err
    return err.mean(1)


def event_mask(target: Tensor, warped: Tensor, threshold: float = 0.05) -> Tensor:
    """[B, H, W]: where either view has events (an image value above ``threshold``)."""
    return (target.amax(1) > threshold) | (warped.amax(1) > threshold)


def photometric_loss(left: Tensor, right: Tensor, disparity: Tensor, ssim: float = 0.85, threshold: float = 0.05,
                     scales: int = 1) -> tuple[Tensor, Tensor]:
    """(loss, mask): how far ``right`` warped by the left ``disparity`` is from ``left`` (0 for
    a perfect match), over the mask [B, H, W] of pixels where either view has events and the
    warp is inside the image. ``scales`` > 1 averages the loss over images and disparity
    average-pooled by 2, 4, ... too (a multi-scale loss, as Monodepth's); the mask is the full
    scale's. Like any photometric loss it pulls a disparity only a few px from the match (on
    the random-dot scene of tests/test_adapt.py, 1.5 px blur: the loss is flat from ~8 px off)."""
    losses, mask = [], None
    for k in range(scales):
        f = 2**k
        if f > 1 and min(left.shape[-2:]) < 4 * f:  # too small to compare at this scale
            break
        l, r, d = (left, right, disparity) if f == 1 else (
            F.avg_pool2d(left, f), F.avg_pool2d(right, f), F.avg_pool2d(disparity.unsqueeze(1), f)[:, 0] / f)
        warped, inside = warp(r, d)
        m = inside & event_mask(l, warped.detach(), threshold)
        losses.append(masked_mean(photometric_error(l, warped, ssim), m))
        mask = m if mask is None else mask
    return sum(losses) / len(losses), mask
