"""A fused CPU read-out: trilinear upsampling of the coarse cost and the soft-argmin in one pass.

The stereo network scores ``levels`` disparities at 1/3 resolution and, as trained, upsamples
that cost trilinearly to ``3 * levels`` disparities at full resolution before the soft-argmin
head. Done with torch ops this materialises a [3 * levels, H, W] volume
three times (upsample, crop, softmax) and takes about a third of the fast network's CPU time.
This numba kernel computes the same numbers per output pixel from the coarse cost (bilinear
in the image plane, linear along disparity, then the head) without building the volume.
It is inference only (no gradient) and matches :meth:`StereoNet.forward` to float rounding.
The same pass gives the confidence (``evstereo.models.heads.confidence``: the softmax mass
within +-1 px of the estimate) from the three or four levels around each estimate, whose
softmax weights it recomputes (cheaper than keeping all of them for a read-out that rarely
needs them: the plain forward's cost is unchanged).

Only soft-argmin is fused: the local-softmax head centres its window on the arg max, and the
upsampling repeats the edge levels, so exact ties are common there and float rounding alone
would decide which window is taken; networks with that head keep the torch read-out.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor, nn

from evstereo.models.heads import CONFIDENCE_RADIUS

_JIT = dict(cache=True, nogil=True, fastmath=True)


def _source_index(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower/upper source index and weight of the upper one, as torch's linear interpolation
    with ``align_corners=False`` computes them for an output of ``n_out`` from ``n_in``."""
    scale = np.float32(n_in / n_out)
    src = np.maximum((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


@numba.njit(parallel=True, **_JIT)
def _upsample_soft_argmin(cost, d0, d1, ld, y0, y1, ly, x0, x1, lx, max_disp, radius, out, conf,
                          with_conf):  # pragma: no cover - numba
    # one output row per task; the inner loops run along x so that they vectorise
    n_levels = cost.shape[1]
    n_disp = d0.shape[0]
    h, w = out.shape[1], out.shape[2]
    for by in numba.prange(cost.shape[0] * h):
        b, y = by // h, by % h
        coarse = np.empty((n_levels, w), np.float32)
        scores = np.empty((n_disp, w), np.float32)
        top = np.full(w, -np.inf, np.float32)
        num = np.zeros(w, np.float32)
        den = np.zeros(w, np.float32)
        ya, yb, wy = y0[y], y1[y], ly[y]
        for k in range(n_levels):
            for x in range(w):
                xa, xb, wx = x0[x], x1[x], lx[x]
                upper = (1 - wx) * cost[b, k, ya, xa] + wx * cost[b, k, ya, xb]
                lower = (1 - wx) * cost[b, k, yb, xa] + wx * cost[b, k, yb, xb]
                coarse[k, x] = (1 - wy) * upper + wy * lower
        for j in range(n_disp):
            ja, jb, wd = d0[j], d1[j], ld[j]
            for x in range(w):
                v = (1 - wd) * coarse[ja, x] + wd * coarse[jb, x]
                scores[j, x] = v
                top[x] = max(top[x], v)
        for j in range(n_disp):
            for x in range(w):
                e = np.exp(scores[j, x] - top[x])
                num[x] += e * np.float32(j)
                den[x] += e
        for x in range(w):
            d = min(max(num[x] / den[x], np.float32(0)), max_disp)
            out[b, y, x] = d
            if with_conf:
                # mass of the levels whose bins [j - 0.5, j + 0.5] overlap [d - radius, d + radius]
                lo = max(int(np.floor(d - radius + np.float32(0.5))), 0)
                hi = min(int(np.ceil(d + radius - np.float32(0.5))), n_disp - 1)
                mass = np.float32(0)
                for j in range(lo, hi + 1):
                    fj = np.float32(j)
                    o = min(fj + np.float32(0.5), d + radius) - max(fj - np.float32(0.5), d - radius)
                    mass += min(max(o, np.float32(0)), np.float32(1)) * np.exp(scores[j, x] - top[x])
                conf[b, y, x] = min(mass / den[x], np.float32(1))


def upsample_soft_argmin(coarse: np.ndarray, size: tuple[int, int, int], crop: tuple[int, int],
                         max_disparity: float, with_confidence: bool = False,
                         radius: float = CONFIDENCE_RADIUS) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Disparity [B, h, w] from a coarse cost [B, L, Hc, Wc] upsampled to ``size`` = (D, H, W).

    ``crop`` = (h, w) keeps the top-left part of the upsampled image (the network pads its
    input at the bottom and right); the result is clamped to [0, max_disparity].
    ``with_confidence``: (disparity, confidence [B, h, w] in [0, 1]) as ``heads.confidence``
    computes it from the upsampled cost.
    """
    coarse = np.ascontiguousarray(coarse, dtype=np.float32)
    if coarse.ndim != 4:
        raise ValueError(f"coarse cost must be [B, L, H, W], got shape {coarse.shape}")
    n_disp, height, width = size
    h, w = crop
    if not (0 < h <= height and 0 < w <= width):
        raise ValueError(f"crop {crop} must lie inside the upsampled size {(height, width)}")
    d0, d1, ld = _source_index(coarse.shape[1], n_disp)
    y0, y1, ly = _source_index(coarse.shape[2], height)
    x0, x1, lx = _source_index(coarse.shape[3], width)
    out = np.empty((coarse.shape[0], h, w), np.float32)
    conf = np.empty((coarse.shape[0], h, w) if with_confidence else (1, 1, 1), np.float32)
    _upsample_soft_argmin(coarse, d0, d1, ld, y0[:h], y1[:h], ly[:h], x0[:w], x1[:w], lx[:w],
                          np.float32(max_disparity), np.float32(radius), out, conf, with_confidence)
    return (out, conf) if with_confidence else out


class FusedReadoutNet(nn.Module):
    """Wraps a :class:`~evstereo.models.stereo_net.StereoNet` for CPU inference with the fused read-out.

    ``forward(left, right)`` returns what the network's own forward returns; on CPU float32
    inputs to a soft-argmin network the upsampling and the head run in
    :func:`upsample_soft_argmin`, otherwise (CUDA, other dtypes, local-softmax head, training
    mode) the network's forward runs unchanged; ``disparity_with_confidence`` likewise. Other
    attributes are the network's.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["net"], name)

    def _fused(self, left: Tensor) -> bool:
        return (left.device.type == "cpu" and left.dtype == torch.float32 and not self.net.training
                and self.net.config.head == "soft_argmin")

    def _readout(self, left: Tensor, right: Tensor, with_confidence: bool):
        cfg = self.net.config
        coarse, (h, w) = self.net.coarse_cost(left, right)
        size = (3 * cfg.levels, 3 * coarse.shape[-2], 3 * coarse.shape[-1])
        return upsample_soft_argmin(coarse.numpy(), size, (h, w), cfg.max_disparity, with_confidence)

    @torch.no_grad()
    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        if not self._fused(left):
            return self.net(left, right)
        return torch.from_numpy(self._readout(left, right, False))

    @torch.no_grad()
    def disparity_with_confidence(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        """The network's ``disparity_with_confidence``, fused on the CPU like ``forward``."""
        if not self._fused(left):
            return self.net.disparity_with_confidence(left, right)
        disparity, conf = self._readout(left, right, True)
        return torch.from_numpy(disparity), torch.from_numpy(conf)
