"""The search's cost term: the decoded network's expected energy per frame, from measured spikes.

During one forward of the supernet an :class:`EnergyProbe` collects what every convolution
of the *decoded* network (the cells and path that the current alphas and betas decode to,
``Trellis.decode``) costs on the input it really receives, counted as the energy meter counts
(:func:`evstereo.snn.energy.layer_counts`: SOPs of the input spikes with the border rule, or
dense MACs when the input is analog). Each charge carries the gradient of a soft weight,
passed straight through (value 1 or 0, gradient of the soft one), so the total is the decoded
network's energy and still moves the architecture weights:

- a cell's resampling convolutions (``pre0``, ``pre1``): the probability that the path
  passes through the cell, ``P(level s' at layer l - 1) x softmax(beta)[move]``;
- an edge's convolution: the op's softmax(alpha) weight, shared as ``2 / inputs`` over the
  node's ``2 + k`` incoming edges (decoding keeps two), times the cell's weight;
- a head: the probability that the path ends at its level.

A trellis state is the beta-weighted sum of several cells' spikes, so its non-zero count
overstates what one decoded cell would send. A convolution fed by such a mixture is charged
per spike of the cell the decoded path arrives by (off the path: each arriving cell's spikes
weighted by the probability that the path came through it); likewise the two convolutions
that read a trellis's output (the first matching convolution, on the cost volume of the
features, and the read-out convolution). The supernet pads the disparity levels for its
coarsest level (to a multiple of 8), a decoded network for its own path's coarsest level, so
the matching part is charged for the decoded depth (the spatial padding is taken as the
supernet's: the search crops are multiples of 24). The other parts (the stems, the cost
upsampling and the soft-argmin) are the same for every architecture and are measured by the
energy meter on the same forward. So the figure is in mJ per frame, and differentiable in
the alphas and in the betas of both trellises (the 2D feature betas included). What it
cannot see: the decoded network's nodes receive two edges' currents, the supernet's all of
them, and retraining changes the firing rates; the tests measure how close it comes.

Beside the energy, every charge also carries the convolution's dense MACs (whatever its
input), so the probe gives the decoded network's ANN-twin count as well: the CPU's work, which
the energy does not bound (a spiking convolution runs dense on a CPU; docs/method.md §3.5).

The search compares it with a budget in mJ per frame at a frame size (by default the
network's nominal sensor size; the crop's figure is scaled by the area ratio, which assumes
the same spike rates on the full frame) with a penalty in units of the budget
(:func:`budget_penalty`), so a cost weight of 1 means "missing the budget by 100 % weighs as
much as one unit of task loss". "target" (the default), ``|E / budget - 1|``, aims at the
budget from both sides, as TuNAS's absolute reward does (Bender et al., CVPR 2020): an
energy below the budget is pulled back up, so the momentum of the architecture optimiser
does not carry a loose budget's search far below it. "hinge", ``max(0, E / budget - 1)``,
only pushes down. Measured on the small supernet of tests/test_energy_budget.py over six
seeds (docs/method.md §3.5): the hinge undershot a budget of 80 % of the free
search's energy to 49 % of it on three seeds and missed it (102 %) on one; the target penalty
landed at 63-77 % on all six.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from evstereo.snn.energy import DEFAULT_PJ_PER_AC, DEFAULT_PJ_PER_MAC, is_spike_tensor, layer_counts


class EnergyProbe:
    """Collects the expected energy of the trellises' convolutions during one supernet forward.

    ``spikes`` passed to :meth:`conv` is the expected non-zero count of the input when the
    input is a mixture of cells (None: the tensor is what a decoded network would see).
    """

    def __init__(self, frames: int, pj_per_ac: float = DEFAULT_PJ_PER_AC, pj_per_mac: float = DEFAULT_PJ_PER_MAC):
        self.frames = frames
        self.pj_per_ac, self.pj_per_mac = pj_per_ac, pj_per_mac
        self.terms: list[Tensor] = []
        self.dense_terms: list[Tensor] = []  # dense MACs, whatever the input (the CPU's work)
        # set by each trellis: its output's expected non-zero count (decoded network) over the
        # mixture's own, for the convolution that reads it next (None: analog)
        self.mixture_scale: Tensor | None = None
        self.scale = 1.0  # multiplies every charge (the matching net's share of padded disparities)

    def conv(self, conv: nn.Module, x: Tensor, y: Tensor, weight: Tensor | float, spikes: Tensor | None = None) -> None:
        """Charge one call of ``conv`` (input ``x``, output ``y``, any leading dims) with ``weight``."""
        with torch.no_grad():
            lead = x.dim() - (len(conv.kernel_size) + 1)  # [B, T, C, ...] -> [B*T, C, ...]
            xf = x.flatten(0, lead - 1) if lead > 1 else x
            yf = y.flatten(0, lead - 1) if lead > 1 else y
            spiking = spikes is not None or is_spike_tensor(xf)
            sops, macs = layer_counts(conv, xf, yf, spiking)
            pj = float(sops) * self.pj_per_ac + float(macs) * self.pj_per_mac
            dense = float(layer_counts(conv, xf, yf, False)[1])
        if spikes is not None:
            nonzero = float((xf != 0).sum())
            pj = (spikes / nonzero) * pj if nonzero else spikes * 0.0
        self.terms.append(weight * pj * self.scale)
        self.dense_terms.append(weight * dense * self.scale)

    def conv_after_trellis(self, conv: nn.Module, x: Tensor, y: Tensor) -> None:
        """Charge ``conv`` (always part of the network) fed by what the last trellis produced."""
        scale = self.mixture_scale
        self.conv(conv, x, y, 1.0, None if scale is None else scale * float((x != 0).sum()))

    def energy_mj(self) -> Tensor:
        """Expected energy of everything charged so far, in mJ per frame."""
        total = sum(self.terms, 0.0)  # tensors (on the model's device) and plain numbers
        return torch.as_tensor(total * (1e-9 / self.frames), dtype=torch.float32)

    def dense_gmacs(self) -> Tensor:
        """Dense MACs of everything charged so far (every input counted as if analog), in G per frame."""
        total = sum(self.dense_terms, 0.0)
        return torch.as_tensor(total * (1e-9 / self.frames), dtype=torch.float32)


@dataclass
class ProbeReading:
    """What ``SearchStereoNet.energy_probe`` yields: after the forwards inside its block, the
    decoded network's expected energy (mJ per frame) and its dense MACs (G per frame, the
    figure ``EnergyMeter.ann_equivalent`` gives for it: the CPU's work), both differentiable in
    the architecture weights, at the block's input size."""

    energy_mj: Callable[[], Tensor]
    dense_gmacs: Callable[[], Tensor]


BUDGET_PENALTIES = ("target", "hinge")


def budget_penalty(energy_mj: Tensor, budget_mj: float, kind: str = "target") -> Tensor:
    """The cost term for ``energy_mj`` against ``budget_mj`` (module doc): "target",
    ``|energy / budget - 1|``, or "hinge", ``max(0, energy / budget - 1)``; both are one at
    twice the budget."""
    excess = energy_mj / budget_mj - 1.0
    if kind == "target":
        return excess.abs()
    if kind == "hinge":
        return torch.relu(excess)
    raise ValueError(f"budget penalty must be one of {', '.join(BUDGET_PENALTIES)}, not {kind!r}")


def area_ratio(size: tuple[int, int], crop: tuple[int, int]) -> float:
    """How many crops of ``crop`` pixels one frame of ``size`` holds (energy scales with area)."""
    return math.prod(size) / math.prod(crop)
