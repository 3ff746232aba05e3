"""Concatenation cost volume (LEAStereo style) over disparity levels at feature resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def concat_volume_conv3d(left: torch.Tensor, right: torch.Tensor, levels: int, weight: torch.Tensor,
                         bias: torch.Tensor | None = None) -> torch.Tensor:
    """``conv3d(concat_cost_volume(left, right, levels), weight, bias, padding=k // 2)`` without the volume.

    left/right ``[N, C, H, W]``, weight ``[O, 2C, k, k, k]`` (k odd, stride 1) -> ``[N, O, levels, H, W]``.

    Every disparity slice of the volume holds the same left features and the same right
    features shifted by d, so away from the masked columns the 3D convolution is a sum of k
    2D convolutions of each image, shifted: 2k 2D convolutions instead of one per level
    (about 8x fewer operations for the first matching layer). Columns where the volume's
    "x < d" mask or the right border cuts the kernel (4p per level, p = k // 2) are then
    recomputed exactly from small slabs of the volume, all levels in one batched conv3d.
    Equal to the direct computation up to float rounding; differentiable.
    """
    n, c, h, w = left.shape
    o, c2, k = weight.shape[0], weight.shape[1], weight.shape[2]
    if right.shape != left.shape or c2 != 2 * c or weight.shape[2:] != (k, k, k) or k % 2 == 0:
        raise ValueError(f"need left/right [N, C, H, W] and a [O, 2C, k, k, k] kernel with odd k; got "
                         f"{tuple(left.shape)}, {tuple(right.shape)}, {tuple(weight.shape)}")
    p, dd = k // 2, levels
    # every output starts at its bias (one pass over the volume, not a fill and an add)
    out = left.new_zeros(n, o, dd, h, w) if bias is None else bias.view(1, o, 1, 1, 1).expand(n, o, dd, h, w).clone()

    def per_slice_conv(x: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
        # one 2D conv for the k disparity taps at once: [N, k, O, H, W]
        return F.conv2d(x, wt.permute(2, 0, 1, 3, 4).reshape(k * o, c, k, k), padding=p).view(n, k, o, h, w)

    lp, rp = per_slice_conv(left, weight[:, :c]), per_slice_conv(right, weight[:, c:])
    # where every tap reads a slice inside the volume (p <= d < levels - p) the taps add up to
    # one left map and one right map shifted by d: precompute both sums
    lsum = lp.sum(1)
    rsum = torch.zeros_like(lsum)  # rsum[..., u] = sum_i rp_i[..., u - i + p]
    for i in range(k):
        sh = i - p
        rsum[..., max(sh, 0):w + min(sh, 0)] += rp[:, i, :, :, max(-sh, 0):w - max(sh, 0)]
    for d in range(dd):  # bulk: columns x >= d + 2p, where no tap of any valid slice is masked
        a = d + 2 * p
        if a >= w:
            break
        dst = out[:, :, d, :, a:]
        if p <= d < dd - p:
            dst.add_(lsum[..., a:]).add_(rsum[..., a - d : w - d])
            continue
        for i in range(k):
            s = d + i - p  # the volume slice this tap reads
            if 0 <= s < dd:
                dst.add_(lp[:, i, :, :, a:]).add_(rp[:, i, :, :, a - s : w - s])
    if p == 0:
        return out
    # exact columns: [d - 2p, d + 2p) around each level's mask edge, and [w - p, w), where the
    # right image's shifted taps would read past the volume's border
    for first, width in ((lambda d: d - 2 * p, 4 * p), (lambda d: w - p, p)):
        starts = [(d, first(d)) for d in range(dd)]
        slabs = _volume_slabs(left, right, dd, starts, p, width)  # [levels * N, 2C, 2p + 1, H, width + 2p]
        exact = F.conv3d(slabs, weight, bias, padding=(0, p, 0)).view(dd, n, o, h, width)
        for d, x0 in starts:
            lo, hi = max(x0, 0), min(x0 + width, w)
            if lo < hi:
                out[:, :, d, :, lo:hi] = exact[d, :, :, :, lo - x0 : hi - x0]
    return out


def _volume_slabs(left: torch.Tensor, right: torch.Tensor, levels: int, starts: list[tuple[int, int]],
                  p: int, width: int) -> torch.Tensor:
    """Pieces of ``concat_cost_volume``: for each (d, x0), slices d - p .. d + p and columns
    x0 - p .. x0 + width + p - 1 (zero outside the volume), stacked along the batch."""
    n, c, h, w = left.shape
    dev = left.device
    d = torch.tensor([s[0] for s in starts], device=dev).view(-1, 1, 1) + torch.arange(-p, p + 1, device=dev).view(1, -1, 1)
    x = torch.tensor([s[1] for s in starts], device=dev).view(-1, 1, 1) + torch.arange(-p, width + p, device=dev).view(1, 1, -1)
    x = x.expand_as(d + x)
    d = d.expand_as(x)
    keep = (x >= d) & (x < w) & (d >= 0) & (d < levels) & (x >= 0)
    xl = x.clamp(0, w - 1).flatten()
    xr = (x - d).clamp(0, w - 1).flatten()
    m = keep.flatten().to(left.dtype)
    slab = torch.cat([left[..., xl] * m, right[..., xr] * m], 1)  # [N, 2C, H, S * (2p + 1) * 6p]
    slab = slab.view(n, 2 * c, h, *keep.shape).permute(3, 0, 1, 4, 2, 5)  # [S, N, 2C, 2p + 1, H, 6p]
    return slab.reshape(len(starts) * n, 2 * c, 2 * p + 1, h, width + 2 * p)


def volume_free_counts(conv: torch.nn.Conv3d, volume: torch.Tensor, spiking: bool) -> tuple[int, int]:
    """(accumulates, MACs) of ``conv`` on ``volume`` computed as :func:`concat_volume_conv3d`
    computes it, for the energy meter (``layer_counts``): the 2k 2D convolutions of the left
    and the right features (slice 0 of the volume holds both whole), as synaptic operations of
    their spikes or as dense MACs; the sums that combine them into every level, as
    accumulates; and the recomputed border columns (4p per level) as the 3D convolution's
    share of them."""
    from evstereo.snn.energy import synaptic_ops

    n, c2, dd, h, w = volume.shape
    c, o, k = c2 // 2, conv.out_channels, conv.kernel_size[0]
    p = k // 2
    cols = min(4 * p, w)
    adds = n * o * h * w * 2 * (k - 1) + n * o * dd * h * w
    if spiking:
        plane = torch.nn.Conv2d(c, k * o, k, padding=p, bias=False, device="meta")  # its shape only
        taps = sum(synaptic_ops(plane, x) for x in (volume[:, :c, 0], volume[:, c:, 0]))
        return taps + adds + round(synaptic_ops(conv, volume) * cols / w), 0
    return adds, 2 * n * h * w * k * o * c * k * k + n * o * dd * h * cols * c2 * k ** 3
