"""A Conv3d that always takes oneDNN's kernel on the CPU.

PyTorch's CPU dispatcher sends 3D convolutions with few channels (below about 24 input
channels here) to ``slow_conv3d``, an im2col loop 10-20x slower than oneDNN for the small
widths a spiking matching net uses (measured: 8->8 channels on 12x88x120, 49 ms vs 4 ms).
``torch.mkldnn_convolution`` computes the same result (to float rounding) and has autograd
support, so we call it directly for float32 CPU tensors and fall back to ``F.conv3d``
elsewhere (CUDA, other dtypes, builds without oneDNN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_MKLDNN = torch.backends.mkldnn.is_available()


class Conv3d(nn.Conv3d):
    """Drop-in ``nn.Conv3d`` (zero padding only) with the oneDNN fast path on the CPU."""

    def forward(self, x: Tensor) -> Tensor:
        if (_MKLDNN and x.device.type == "cpu" and x.dtype == torch.float32 and self.padding_mode == "zeros"
                and isinstance(self.padding, tuple) and x.dim() == 5):
            return torch.mkldnn_convolution(x.contiguous(), self.weight, self.bias, list(self.padding),
                                            list(self.stride), list(self.dilation), self.groups)
        return F.conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
