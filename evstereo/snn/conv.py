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
- ``stacked_conv``: several convolutions of one input with the same settings as one
  convolution of their stacked kernels (a derived cell's edges that read the same state), one
  oneDNN call instead of several: 2x faster for two 4->4 (2D) or 8->8 (3D) convolutions here.
- ``summed_conv``: the sum of convolutions of different inputs (a derived node whose two edges
  are convolutions of two states) as one convolution of the channel-stacked inputs: one call and
  no addition, 0.4 of 3.2 ms saved for two 4->4 3D edges on 12x88x116 here; equal up to float
  rounding (one accumulation instead of two).
- ``Conv3d`` with one output channel (the matching net's read-out), at inference (no
  gradient), runs as one 2D convolution of every depth slice with the kernel's k depth taps as
  k output channels, whose shifted maps are then summed: oneDNN's 3D kernel is poor at one
  output channel (12->1 channels on 12x88x116, one thread: 9-11 ms vs 5 ms this way); at 12
  outputs the 3D kernel wins (10 vs 16 ms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_MKLDNN = torch.backends.mkldnn.is_available()


def unhooked(module: nn.Module) -> bool:
    """No forward hooks see this module's input or output (the energy meter hooks convolutions),
    so a faster but differently shaped computation of the same result may stand in for it."""
    from torch.nn.modules import module as _m

    return not (module._forward_hooks or module._forward_pre_hooks or _m._global_forward_hooks
                or _m._global_forward_pre_hooks)


def is_pointwise(conv: nn.Module) -> bool:
    """A 1x1(x1) kernel, stride 1, no padding, one group: the convolution acts position by position."""
    # a string padding ("same"/"valid") never compares equal to 0 here
    return (all(k == 1 for k in conv.kernel_size) and all(s == 1 for s in conv.stride)
            and all(p == 0 for p in conv.padding) and conv.groups == 1)


def pointwise(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A 1x1(x1) convolution of ``[N, C, *spatial]`` as one batched matrix product."""
    n, o = x.shape[0], weight.shape[0]
    # bmm, not matmul: matmul folds [O, C] @ [N, C, L] into a transposed product plus a copy
    y = torch.bmm(weight.view(1, o, -1).expand(n, o, -1), x.flatten(2)).view(n, o, *x.shape[2:])
    return y if bias is None else y + bias.view(1, -1, *([1] * (x.dim() - 2)))


def _one_output_by_slices(conv: nn.Conv3d) -> bool:
    kd = conv.kernel_size[0]
    return (conv.out_channels == 1 and conv.groups == 1 and conv.stride[0] == 1 and conv.dilation[0] == 1
            and kd % 2 == 1 and isinstance(conv.padding, tuple) and conv.padding[0] == kd // 2
            and conv.padding_mode == "zeros")


def depth_slices_conv(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple, padding: tuple,
                      dilation: tuple) -> Tensor:
    """``conv3d(x, weight, bias, stride, padding, dilation)`` for ``[N, C, D, H, W]`` input when the
    depth axis has stride 1, dilation 1 and padding ``k // 2`` (k odd): every depth slice goes
    through one 2D convolution with the k depth taps as output channels, and output slice d sums
    tap j of input slice ``d + j - k // 2``. Differentiable."""
    n, c, d, h, w = x.shape
    o, kd = weight.shape[0], weight.shape[2]
    taps = weight.permute(2, 0, 1, 3, 4).reshape(kd * o, c, *weight.shape[3:])
    per_slice = F.conv2d(x.transpose(1, 2).reshape(n * d, c, h, w), taps, None, stride[1:], padding[1:], dilation[1:])
    per_slice = per_slice.view(n, d, kd, o, *per_slice.shape[-2:])
    half = kd // 2
    out = per_slice[:, :, half].clone()
    for j in range(kd):
        s = j - half  # output slice d reads input slice d + s through tap j
        if s == 0 or abs(s) >= d:
            continue
        if s > 0:
            out[:, :-s] += per_slice[:, s:, j]
        else:
            out[:, -s:] += per_slice[:, :s, j]
    out = out.transpose(1, 2).contiguous()
    return out if bias is None else out + bias.view(1, -1, 1, 1, 1)


class Conv2d(nn.Conv2d):
    """Drop-in ``nn.Conv2d`` with the matrix-product path for 1x1 kernels."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and is_pointwise(self):
            return pointwise(x, self.weight, self.bias)
        return super().forward(x)


class Conv3d(nn.Conv3d):
    """Drop-in ``nn.Conv3d`` (zero padding only) with the oneDNN fast path on the CPU."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5 and is_pointwise(self):
            return pointwise(x, self.weight, self.bias)
        # inference only: training and search keep oneDNN's kernel, whose rounding their
        # trajectories (and tests/test_energy_budget.py's decoded networks) were measured with
        if x.dim() == 5 and x.device.type == "cpu" and not torch.is_grad_enabled() and _one_output_by_slices(self):
            return depth_slices_conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        return _dense_conv(self, x, self.weight, self.bias)


def _dense_conv(conv: nn.Module, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv``'s convolution of ``x`` with ``weight`` and ``bias`` in its place: oneDNN's kernel
    called directly for a 3D float32 CPU input (the ``Conv3d`` note above), else torch's own."""
    if (isinstance(conv, nn.Conv3d) and _MKLDNN and not torch.compiler.is_compiling() and x.device.type == "cpu"
            and x.dtype == torch.float32 and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
            and x.dim() == 5):
        return torch.mkldnn_convolution(x.contiguous(), weight, bias, list(conv.padding), list(conv.stride),
                                        list(conv.dilation), conv.groups)
    return conv._conv_forward(x, weight, bias)


def _settings(conv: nn.Module) -> tuple:
    return (type(conv), conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode,
            conv.in_channels)


def stacked_conv(convs: list[nn.Module], x: Tensor) -> list[Tensor] | None:
    """``[conv(x) for conv in convs]`` from one convolution whose kernel stacks theirs (views of
    its output channels), for ``Conv2d``/``Conv3d`` modules of one input that share kernel size,
    stride, padding, dilation and one group; None when they do not, for fewer than two, or for
    1x1 kernels."""
    if len(convs) < 2 or not all(isinstance(c, (nn.Conv2d, nn.Conv3d)) for c in convs):
        return None
    first = _settings(convs[0])
    if any(_settings(c) != first for c in convs[1:]) or convs[0].groups != 1 or is_pointwise(convs[0]):
        return None  # 1x1 kernels have their own faster path (``pointwise``)
    weight = torch.cat([c.weight for c in convs])
    bias = None if all(c.bias is None for c in convs) else torch.cat(
        [c.weight.new_zeros(c.out_channels) if c.bias is None else c.bias for c in convs])
    y = _dense_conv(convs[0], x, weight, bias)
    return list(y.split([c.out_channels for c in convs], dim=1))


def summed_conv(convs: list[nn.Module], xs: list[Tensor]) -> Tensor | None:
    """``sum(conv(x) for conv, x in zip(convs, xs))`` as one convolution of the channel-concatenated
    inputs with the kernels concatenated along their input channels (a derived node whose edges
    are all convolutions of different states), for ``Conv2d``/``Conv3d`` modules with equal
    settings apart from their input channels and one group; None when they differ, for fewer
    than two, or for 1x1 kernels. Equal to the sum up to float rounding (one accumulation)."""
    if len(convs) < 2 or len(convs) != len(xs) or not all(isinstance(c, (nn.Conv2d, nn.Conv3d)) for c in convs):
        return None
    first = _settings(convs[0])[:-1]
    if any(_settings(c)[:-1] != first for c in convs[1:]) or convs[0].groups != 1 or is_pointwise(convs[0]):
        return None
    if len({c.out_channels for c in convs}) != 1:
        return None
    weight = torch.cat([c.weight for c in convs], dim=1)
    biases = [c.bias for c in convs if c.bias is not None]
    bias = torch.stack(biases).sum(0) if biases else None
    return _dense_conv(convs[0], torch.cat(xs, dim=1), weight, bias)
