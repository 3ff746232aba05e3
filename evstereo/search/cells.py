"""SpikeDHS cells: operations mixed at the membrane, for the supernet and for derived networks.

Every node has ONE spiking neuron; its incoming edges add currents into that membrane:
``snn_b3``/``snn_b5`` edges contribute conv(3x3[x3]) + BN of their input spikes, a
``skip_connect`` edge contributes its input spikes unchanged. The node's surrogate
temperature comes from its ops: ``snn_bX`` stands for b = X, a node takes the (weighted)
mean b of its spiking ops — the way we realise "b3/b5 ops" with one neuron per node (the
reference code's exact rule is not public). A cell has two inputs (index 0: two layers back,
1: previous layer), both resampled to the cell's level and width first, three nodes, and
outputs the concatenation of its nodes (block multiplier 3). Works for 2D ([B, T, C, H, W])
and 3D ([B, T, C, D, H, W]) tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evstereo.search.decode import edge_index
from evstereo.search.energy_cost import EnergyProbe
from evstereo.search.genotypes import NUM_NODES, PRIMITIVES, CellGenotype
from evstereo.snn.conv import Conv2d, Conv3d, is_pointwise, stacked_conv, summed_conv, unhooked
from evstereo.snn.layers import SpikingConv, SpikingLayer
from evstereo.snn.neuron import LIF
from evstereo.snn.time_constants import TimeConstants

OP_B = {"snn_b3": 3.0, "snn_b5": 5.0}
_CONV = {2: Conv2d, 3: Conv3d}
_BN = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class Neurons:
    """What every neuron of one part of the network shares: time-constant registry and type."""

    def __init__(self, time_constants: TimeConstants | None, neuron_type: str, **lif_kwargs):
        self.tc, self.type, self.kwargs = time_constants, neuron_type, lif_kwargs

    def lif(self, b: float = 3.0) -> LIF:
        if self.tc is None:
            return LIF(b=b, **self.kwargs)
        return LIF(b=b, time_constants=self.tc, neuron_type=self.type, **self.kwargs)

    def conv(self, c_in: int, c_out: int, k: int, stride: int, dim: int) -> SpikingConv:
        if self.tc is None:
            return SpikingConv(c_in, c_out, k, stride, dim=dim, **self.kwargs)
        return SpikingConv(c_in, c_out, k, stride, dim=dim, time_constants=self.tc, neuron_type=self.type, **self.kwargs)


def edge_op(name: str, channels: int, dim: int) -> nn.Module:
    """The synapse of one edge: a current from the source's spikes."""
    if name == "skip_connect":
        return nn.Identity()
    if name in OP_B:
        return nn.Sequential(_CONV[dim](channels, channels, 3, 1, 1, bias=False), _BN[dim](channels))
    raise ValueError(f"unknown operation {name!r}")


def fold(x: Tensor) -> Tensor:
    """[B, T, ...] -> [B*T, ...] so per-step modules see a plain batch."""
    return x.flatten(0, 1)


def unfold(y: Tensor, like: Tensor) -> Tensor:
    return y.unflatten(0, like.shape[:2])


def upsample_nearest(x: Tensor, size: tuple[int, ...]) -> Tensor:
    """``F.interpolate(x, size, mode="nearest")``; whole-number factors by broadcasting, which
    is several times faster on the CPU (torch's 3D nearest kernel is slow)."""
    spatial = x.shape[2:]
    factors = [s // n if n and s % n == 0 else 0 for s, n in zip(size, spatial)]
    if len(size) != len(spatial) or not all(factors):
        return F.interpolate(x, size=size, mode="nearest")
    view, expand = list(x.shape[:2]), list(x.shape[:2])
    for n, f in zip(spatial, factors):
        view += [n, 1]
        expand += [n, f]
    return x.reshape(view).expand(expand).reshape(*x.shape[:2], *size)


class Resample(nn.Module):
    """Bring a [B, T, C, ...] input from one level to another (each level halves the size).

    Coarser: one stride-2 spiking 3x3 conv per level. Finer: nearest upsampling to the target
    size (spikes stay binary), then a 1x1 spiking conv. Same level: a 1x1 spiking conv,
    or nothing when the width already matches.
    """

    def __init__(self, c_in: int, c_out: int, level_in: int, level_out: int, dim: int, neurons: Neurons):
        super().__init__()
        self.up = level_out < level_in
        steps = max(level_out - level_in, 0)
        layers = []
        c = c_in
        for _ in range(steps):
            layers.append(neurons.conv(c, c_out, 3, 2, dim))
            c = c_out
        if steps == 0 and (c_in != c_out or self.up):
            layers.append(neurons.conv(c_in, c_out, 1, 1, dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor, size: tuple[int, ...], probe: EnergyProbe | None = None, weight: Tensor | float = 1.0,
                spikes: Tensor | None = None) -> Tensor:
        """With a ``probe``, each convolution is charged ``weight`` (``spikes``: the input's
        expected non-zero count when it is a mixture of cells, see :mod:`~evstereo.search.energy_cost`)."""
        if self.up:
            if probe is None and self._pointwise_at_inference():
                # a 1x1 synapse and its neuron act position by position, so they commute with nearest
                # upsampling: run them first, on a quarter (2D) or an eighth (3D) of the positions
                y = self.layers(x)
                return unfold(upsample_nearest(fold(y), size), y)
            y = unfold(upsample_nearest(fold(x), size), x)
            spikes = None if spikes is None else spikes * (y.numel() / x.numel())
            x = y
        if probe is None:
            return self.layers(x)
        for layer in self.layers:
            y = layer(x)
            probe.conv(layer.synapse[0], x, y, weight, spikes)
            x, spikes = y, None
        return x

    def _pointwise_at_inference(self) -> bool:
        """Whether ``layers`` is one position-wise spiking layer evaluated without gradient, whose
        reordering nothing can observe (no energy-meter hook, no DGS candidates, no membrane
        carried to the next call at the upsampled size)."""
        if len(self.layers) != 1 or self.training or torch.is_grad_enabled():
            return False
        layer = self.layers[0]
        conv = layer.synapse[0]
        return (layer.plain and not layer.neuron.stateful and is_pointwise(conv) and unhooked(conv)
                and all(isinstance(m, (nn.Conv2d, nn.Conv3d, nn.modules.batchnorm._BatchNorm)) for m in layer.synapse))


class NodeSynapse(nn.Module):
    """Sum of edge currents; the input is the channel-concatenation of the node's sources.

    Packing the sources into one tensor lets a derived node be a plain SpikingLayer, so DGS,
    hybrid switching and the energy meter treat it like any other layer.
    """

    def __init__(self, ops: list[nn.Module], channels: int):
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        parts = x.split(self.channels, dim=1)
        return sum(op(p) for op, p in zip(self.ops, parts))


def node_b(ops: list[str]) -> float:
    spiking = [OP_B[o] for o in ops if o in OP_B]
    return sum(spiking) / len(spiking) if spiking else 3.0


class Cell(nn.Module):
    """A derived cell (two edges per node) at one level."""

    def __init__(self, genotype: CellGenotype, c_pp: int, c_p: int, level_pp: int, level_p: int, level: int,
                 channels: int, dim: int, neurons: Neurons):
        super().__init__()
        self.genotype, self.channels, self.level = genotype, channels, level
        self.pre0 = Resample(c_pp, channels, level_pp, level, dim, neurons)
        self.pre1 = Resample(c_p, channels, level_p, level, dim, neurons)
        self.nodes = nn.ModuleList()
        for edges in genotype.nodes:
            ops = [edge_op(op, channels, dim) for _, op in edges]
            self.nodes.append(SpikingLayer(NodeSynapse(ops, channels), neurons.lif(node_b([op for _, op in edges]))))
        # state index -> the (node, edge) pairs that read it (states 0, 1: the inputs; 2 + k: node k)
        self._readers: dict[int, list[tuple[int, int]]] = {}
        for k, edges in enumerate(genotype.nodes):
            for e, (src, _) in enumerate(edges):
                self._readers.setdefault(src, []).append((k, e))

    @property
    def out_channels(self) -> int:
        return NUM_NODES * self.channels

    def forward(self, s0: Tensor, s1: Tensor, size: tuple[int, ...]) -> Tensor:
        states = [self.pre0(s0, size), self.pre1(s1, size)]
        if self._direct_at_inference():
            return self._direct(states)
        for edges, node in zip(self.genotype.nodes, self.nodes):
            states.append(node(torch.cat([states[src] for src, _ in edges], dim=2)))
        return torch.cat(states[2:], dim=2)

    def _direct_at_inference(self) -> bool:
        """Whether the nodes' currents may be computed edge by edge from the states themselves:
        at inference without gradient, every node its own synapse then its neuron (no DGS
        candidates), no energy-meter hook on an edge's convolution (nothing observes the order)."""
        if self.training or torch.is_grad_enabled():
            return False
        return all(node.plain and all(unhooked(m) for m in node.synapse.modules()) for node in self.nodes)

    def _summed_nodes(self) -> set[int]:
        """The nodes whose edges are all single convolutions, each of a different state that no
        other convolution edge reads: their current is one convolution of the stacked states
        (``summed_conv``) without losing a ``stacked_conv`` of a shared state."""
        out = set()
        for k, edges in enumerate(self.genotype.nodes):
            ops = self.nodes[k].synapse.ops
            srcs = [src for src, _ in edges]
            if len(set(srcs)) != len(srcs) or not all(_single_conv(op) is not None for op in ops):
                continue
            if all(not any(j != k and _single_conv(self.nodes[j].synapse.ops[e]) is not None
                           for j, e in self._readers[src]) for src in srcs):
                out.add(k)
        return out

    def _direct(self, states: list[Tensor]) -> Tensor:
        """``forward``'s nodes without concatenating each node's sources and splitting them again,
        with the convolutions that read one state run as one (``stacked_conv``) and a node whose
        edges are convolutions of different states as one convolution (``summed_conv``, equal up
        to float rounding: about 2 % off the shipped network's median forward); otherwise the
        same currents, summed in the same order, into the same neurons."""
        like = states[0]
        flat = [fold(x) for x in states]
        edge_out: dict[tuple[int, int], Tensor] = {}  # (node, edge) -> its current, once its source exists
        summed = self._summed_nodes()

        def run_edges_of(src: int) -> None:
            ops = {key: self.nodes[key[0]].synapse.ops[key[1]] for key in self._readers.get(src, [])
                   if key[0] not in summed}
            convs = [key for key, op in ops.items() if not isinstance(op, nn.Identity)]
            single = [_single_conv(ops[key]) for key in convs]
            stacked = stacked_conv(single, flat[src]) if all(c is not None for c in single) else None
            for i, key in enumerate(convs):
                edge_out[key] = stacked[i] if stacked is not None else ops[key](flat[src])
            for key, op in ops.items():
                if isinstance(op, nn.Identity):
                    edge_out[key] = flat[src]

        run_edges_of(0)
        run_edges_of(1)
        for k, (edges, node) in enumerate(zip(self.genotype.nodes, self.nodes)):
            current = summed_conv([_single_conv(op) for op in node.synapse.ops], [flat[src] for src, _ in edges]) \
                if k in summed else None
            if current is None:
                current = sum(edge_out[(k, e)] if (k, e) in edge_out else node.synapse.ops[e](flat[src])
                              for e, (src, _) in enumerate(edges))
            flat.append(fold(node.fire(unfold(current, like))))
            run_edges_of(len(flat) - 1)
        return torch.cat([unfold(x, like) for x in flat[2:]], dim=2)


def _single_conv(op: nn.Module) -> nn.Module | None:
    """The convolution of an edge that is one convolution (a ``Sequential`` of it), else None."""
    if isinstance(op, nn.Sequential) and len(op) == 1 and isinstance(op[0], (nn.Conv2d, nn.Conv3d)):
        return op[0]
    return None


class MixedNode(nn.Module):
    """A supernet node: every candidate op on every incoming edge, weighted by softmax(alpha)."""

    def __init__(self, n_inputs: int, channels: int, dim: int, neurons: Neurons, primitives=PRIMITIVES):
        super().__init__()
        self.primitives = primitives
        self.edges = nn.ModuleList(
            nn.ModuleList(edge_op(p, channels, dim) if p != "zero" else _Zero() for p in primitives)
            for _ in range(n_inputs))
        self.neuron = neurons.lif()
        self._b = torch.tensor([OP_B.get(p, 0.0) for p in primitives])

    def forward(self, inputs: list[Tensor], weights: Tensor, probe: EnergyProbe | None = None,
                weight: Tensor | float = 1.0, spikes: list[Tensor | None] | None = None,
                charges: Tensor | None = None) -> Tensor:
        """``weights``: [n_inputs, n_ops] softmax weights of this node's edges. With a ``probe``,
        an edge's convolution is charged ``weight`` x ``charges[src, op]`` (how much of it the
        decoded node has); ``spikes[src]`` as in :class:`Resample`."""
        current = 0
        for src, ops in enumerate(self.edges):
            x = fold(inputs[src])
            for k, op in enumerate(ops):
                y = op(x)
                current = current + weights[src, k] * y
                if probe is not None and isinstance(op, nn.Sequential):
                    probe.conv(op[0], x, y, weight * charges[src, k], spikes[src] if spikes else None)
        current = unfold(current, inputs[0])
        # the node's surrogate b: mean of the spiking ops' b, weighted by their edge weights
        spiking = (self._b > 0).to(weights)
        w = weights.mean(0) * spiking
        b = (w * self._b.to(weights)).sum() / w.sum().clamp_min(1e-6)
        return self.neuron(current, b=b.detach())


class _Zero(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 0.0


class MixedCell(nn.Module):
    """A supernet cell: the cell of ``Cell`` with all nine edges mixed."""

    def __init__(self, c_pp: int, c_p: int, level_pp: int, level_p: int, level: int, channels: int, dim: int,
                 neurons: Neurons, primitives=PRIMITIVES):
        super().__init__()
        self.channels, self.level = channels, level
        self.pre0 = Resample(c_pp, channels, level_pp, level, dim, neurons)
        self.pre1 = Resample(c_p, channels, level_p, level, dim, neurons)
        self.nodes = nn.ModuleList(MixedNode(2 + k, channels, dim, neurons, primitives) for k in range(NUM_NODES))

    @property
    def out_channels(self) -> int:
        return NUM_NODES * self.channels

    def forward(self, s0: Tensor, s1: Tensor, size: tuple[int, ...], weights: Tensor, probe: EnergyProbe | None = None,
                weight: Tensor | float = 1.0, spikes: tuple[Tensor | None, Tensor | None] = (None, None),
                charges: Tensor | None = None) -> Tensor:
        """``weights``: [9, n_ops] softmax of the alphas; with a ``probe``: ``weight`` (whether
        the decoded path contains this cell), ``spikes`` (of s0, s1) as in :class:`Resample` and
        ``charges`` [9, n_ops] (whether the decoded cell has each edge op)."""
        states = [self.pre0(s0, size, probe, weight, spikes[0]), self.pre1(s1, size, probe, weight, spikes[1])]
        # an input passed through unchanged is still a mixture; a resampled one is this cell's own
        counts = [spikes[0] if not len(self.pre0.layers) else None, spikes[1] if not len(self.pre1.layers) else None]
        for k, node in enumerate(self.nodes):
            w = weights[edge_index(k, 0) : edge_index(k, 0) + 2 + k]
            c = charges[edge_index(k, 0) : edge_index(k, 0) + 2 + k] if charges is not None else None
            states.append(node(states, w, probe, weight, counts + [None] * k, c))
        return torch.cat(states[2:], dim=2)
