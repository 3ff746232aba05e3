"""Convolutions that take the fast CPU kernels PyTorch's dispatcher misses.

- ``Conv3d``: PyTorch sends 3D convolutions with few channels (below about 24 input channels
  here) to ``slow_conv3d``, an im2col loop 10-20x slower than oneDNN for the small widths a
  spiking matching net uses (measured: 8->8 channels on 12x88x120, 49 ms vs 4 ms).
  ``torch.mkldnn_convolution`` computes the same result (to float rounding) and has autograd
  support, so we call it directly for float32 CPU tensors and fall back to ``F.conv3d``
  elsewhere (CUDA, other dtypes, builds without oneDNN, inside ``torch.compile``, which has
  no shape function for it).
- ``Conv2d``/``Conv3d`` with a 1x1(x1) kernel (stride 1, no padding, one group) are a matrix
  product over the channels; oneDNN reorders such inputs first and takes 5-15x longer
  (24->12 channels on 12x88x116: 2.5 ms vs 0.4 ms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_MKLDNN = torch.backends.mkldnn.is_available()


def _is_pointwise(conv: nn.Module) -> bool:
    # a string padding ("same"/"valid") never compares equal to 0 here
    return (all(k == 1 for k in conv.kernel_size) and all(s == 1 for s in conv.stride)
            and all(p == 0 for p in conv.padding) and conv.groups == 1)


def pointwise(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A 1x1(x1) convolution of ``[N, C, *spatial]`` as one batched matrix product."""
    n, o = x.shape[0], weight.shape[0]
    # bmm, not matmul: matmul folds [O, C] @ [N, C, L] into a transposed product plus a copy
    y = torch.bmm(weight.view(1, o, -1).expand(n, o, -1), x.flatten(2)).view(n, o, *x.shape[2:])
    return y if bias is None else y + bias.view(1, -1, *([1] * (x.dim() - 2)))


class Conv2d(nn.Conv2d):
    """Drop-in ``nn.Conv2d`` with the matrix-product path for 1x1 kernels."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and _is_pointwise(self):
            return pointwise(x, self.weight, self.bias)
        return super().forward(x)


class Conv3d(nn.Conv3d):
    """Drop-in ``nn.Conv3d`` (zero padding only) with the oneDNN fast path on the CPU."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5 and _is_pointwise(self):
            return pointwise(x, self.weight, self.bias)
        if (_MKLDNN and not torch.compiler.is_compiling() and x.device.type == "cpu" and x.dtype == torch.float32
                and self.padding_mode == "zeros" and isinstance(self.padding, tuple) and x.dim() == 5):
            return torch.mkldnn_convolution(x.contiguous(), self.weight, self.bias, list(self.padding),
                                            list(self.stride), list(self.dilation), self.groups)
        return F.conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
