"""The layer-level search space: a trellis of mixed cells over levels 1/3, 1/6, 1/12, 1/24.

Layer l has a cell at every level s it can reach (s <= l + 1, since the stem sits at level
0). The cell at (l, s) is fed by the previous layer's cells at s - 1 (downsampling), s and
s + 1 (upsampling), each through a cell of its own; their outputs are summed with the move
probabilities softmax(beta) of the cell they come from (Auto-DeepLab). The network's output
sums every last-layer level, resampled to ``out_level``, weighted by the probability of
ending there (forward algorithm over the trellis), so the last betas are trained too.

The cost constraint: while a probe is attached, the forward charges the measured cost of
every convolution the decoded network has, with the gradient of the softmax weights passed
straight through (:mod:`evstereo.search.energy_cost`), so it is differentiable in the alphas
and the betas.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evstereo.search.cells import MixedCell, Neurons, Resample
from evstereo.search.decode import MOVES, NUM_EDGES, decode_cell, edge_index, valid_moves, viterbi_path
from evstereo.search.energy_cost import EnergyProbe
from evstereo.search.genotypes import NUM_LEVELS, NUM_NODES, PRIMITIVES, CellGenotype
from evstereo.snn.energy import is_spike_tensor


def move_logits_mask(n_layers: int) -> Tensor:
    """[L, NUM_LEVELS, 3] True where a move is possible (target level inside 0..3)."""
    return torch.from_numpy(valid_moves(n_layers))


def move_probabilities(betas: Tensor) -> Tensor:
    """softmax over each cell's possible moves; impossible moves get probability 0."""
    mask = move_logits_mask(betas.shape[0]).to(betas.device)
    return torch.softmax(betas.masked_fill(~mask, float("-inf")), dim=-1)


def level_marginals(betas: Tensor) -> Tensor:
    """[L, NUM_LEVELS] probability that the path's layer l sits at level s (stem at level 0)."""
    probs = move_probabilities(betas)
    p = torch.zeros(NUM_LEVELS, dtype=betas.dtype, device=betas.device)
    p = p.index_fill(0, torch.tensor([0], device=betas.device), 1.0)
    out = []
    for layer in range(betas.shape[0]):
        new = torch.zeros_like(p)
        for m, move in enumerate(MOVES):
            for s in range(NUM_LEVELS):
                if 0 <= s + move < NUM_LEVELS:
                    new = new.index_add(0, torch.tensor([s + move], device=betas.device), (p[s] * probs[layer, s, m]).view(1))
        p = new
        out.append(p)
    return torch.stack(out)


class Trellis(nn.Module):
    def __init__(self, n_layers: int, dim: int, filters: int, c_pp: int, c_p: int, neurons: Neurons,
                 out_level: int = 0, primitives=PRIMITIVES):
        super().__init__()
        self.n_layers, self.dim, self.filters, self.out_level = n_layers, dim, filters, out_level
        self.primitives = primitives
        self.cells = nn.ModuleDict()
        out_ch = {}  # (layer, level) -> channels; layer -1 = stem (level 0), -2 = stem's input side
        out_ch[(-2, 0)], out_ch[(-1, 0)] = c_pp, c_p
        for layer in range(n_layers):
            for s in range(min(layer + 2, NUM_LEVELS)):
                ch = filters * 2**s
                for m, move in enumerate(MOVES):
                    src = s - move
                    if (layer - 1, src) not in out_ch:
                        continue
                    pp_level = self._pp_level(layer, s, out_ch)
                    cell = MixedCell(out_ch[(layer - 2, pp_level)], out_ch[(layer - 1, src)], pp_level, src, s,
                                     ch, dim, neurons, primitives)
                    self.cells[f"{layer}_{s}_{m}"] = cell
                out_ch[(layer, s)] = NUM_NODES * ch
        self.out_ch = out_ch
        last = n_layers - 1
        self.heads = nn.ModuleDict({
            str(s): Resample(out_ch[(last, s)], NUM_NODES * filters * 2**out_level, s, out_level, dim, neurons)
            for s in range(NUM_LEVELS) if (last, s) in out_ch})
        self.alphas = nn.Parameter(1e-3 * torch.randn(NUM_EDGES, len(primitives)))
        self.probe: EnergyProbe | None = None  # set by SearchStereoNet.energy_probe
        self.decode_end: int | None = None  # the level the decoded path must end at (None: free)
        self.betas = nn.Parameter(1e-3 * torch.randn(n_layers, NUM_LEVELS, len(MOVES)))

    @staticmethod
    def _pp_level(layer: int, s: int, out_ch: dict) -> int:
        """Level of the 'two layers back' input: the same level if that layer had it, else its finest."""
        if layer - 2 < -1:
            return 0
        return s if (layer - 2, s) in out_ch else max(lv for (ly, lv) in out_ch if ly == layer - 2)

    @property
    def out_channels(self) -> int:
        return NUM_NODES * self.filters * 2**self.out_level

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas, self.betas]

    def decode(self) -> tuple[CellGenotype, tuple[int, ...]]:
        """The cell and level path the current alphas and betas decode to."""
        cell = decode_cell(self.alphas.detach().cpu().numpy(), self.primitives)
        return cell, viterbi_path(self.betas.detach().cpu().numpy(), end_level=self.decode_end)

    def _charges(self, weights: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """What the probe charges each edge op with: 1 for the decoded cell's ops, 0 for the
        others, plus (straight through) the soft weights' gradient, shared over the node's
        edges as decoding keeps two of them; and the decoded path."""
        cell, path = self.decode()
        hard = torch.zeros_like(weights)
        share = torch.ones(NUM_EDGES, 1, dtype=weights.dtype, device=weights.device)
        for k, edges in enumerate(cell.nodes):
            share[edge_index(k, 0): edge_index(k, 0) + 2 + k] = 2 / (2 + k)
            for src, op in edges:
                hard[edge_index(k, src), self.primitives.index(op)] = 1.0
        return hard + share * (weights - weights.detach()), path

    def forward(self, s_pp: Tensor, s_p: Tensor, sizes: list[tuple[int, ...]]) -> Tensor:
        """``sizes[s]``: spatial size at level s. Returns [B, T, C, ...] at ``out_level``.

        While ``self.probe`` is set (``SearchStereoNet.energy_probe``), every convolution of the
        decoded network is charged to it (:mod:`~evstereo.search.energy_cost`)."""
        probe = self.probe
        weights = torch.softmax(self.alphas, dim=-1)
        probs = move_probabilities(self.betas)
        marg = level_marginals(self.betas)
        charges, path = self._charges(weights) if probe is not None else (None, ())
        outs = {(-2, 0): s_pp, (-1, 0): s_p}
        spikes: dict[tuple[int, int], Tensor | None] = {(-2, 0): None, (-1, 0): None}  # stems: exact tensors
        for layer in range(self.n_layers):
            for s in range(min(layer + 2, NUM_LEVELS)):
                total, arrivals = None, []
                for m, move in enumerate(MOVES):
                    key = f"{layer}_{s}_{m}"
                    if key not in self.cells:
                        continue
                    src = s - move
                    pp_key = (layer - 2, self._pp_level(layer, s, self.out_ch))
                    p_cell = probs[layer, src, m] * (marg[layer - 1, src] if layer > 0 else 1.0)
                    on_path = probe is not None and path[layer] == s and (path[layer - 1] if layer else 0) == src
                    out = self.cells[key](outs[pp_key], outs[(layer - 1, src)], sizes[s], weights, probe,
                                          float(on_path) + p_cell - p_cell.detach(),
                                          (spikes[pp_key], spikes[(layer - 1, src)]), charges)
                    if probe is not None:
                        arrivals.append((1.0 if on_path else 0.0, float(p_cell.detach()), out))
                    y = probs[layer, src, m] * out
                    total = y if total is None else total + y
                outs[(layer, s)] = total
                spikes[(layer, s)] = _expected_spikes(arrivals) if probe is not None else None
        last = self.n_layers - 1
        out, ends = None, []
        for s, head in self.heads.items():
            p_end = marg[-1, int(s)]
            charge = float(probe is not None and path[-1] == int(s)) + p_end - p_end.detach()
            h = head(outs[(last, int(s))], sizes[self.out_level], probe, charge, spikes[(last, int(s))])
            ends.append((float(charge.detach()), h, spikes[(last, int(s))] if not len(head.layers) else None))
            y = p_end * h
            out = y if out is None else out + y
        if probe is not None:
            probe.mixture_scale = _mixture_scale(ends, out)
        return out


def _expected_spikes(arrivals: list[tuple[float, float, Tensor]]) -> float | None:
    """Non-zero count of what the decoded cell at this (layer, level) sends on: that of the
    cell the decoded path arrives by, or, off the path, each arriving cell's weighted by the
    probability that the path came through it. None when the cells' outputs are analog (their
    cost does not depend on values). ``arrivals``: (on the path, path probability, output)."""
    if not all(is_spike_tensor(out) for _, _, out in arrivals):
        return None
    counts = [float((out != 0).sum()) for _, _, out in arrivals]
    for w in (tuple(a[0] for a in arrivals), tuple(a[1] for a in arrivals)):
        if sum(w) > 0:
            return sum(wi * n for wi, n in zip(w, counts)) / sum(w)
    return sum(counts) / len(counts)


def _mixture_scale(ends: list[tuple[float, Tensor, float | None]], out: Tensor) -> float | None:
    """Non-zero count of the decoded network's output over the mixture's own count: what the
    next convolution's measured spikes are scaled by (None: analog output). ``ends``: (1 for
    the decoded path's last level else 0, head output, its count if the head passed a mixture
    through)."""
    if not all(n is not None or is_spike_tensor(h) for _, h, n in ends):
        return None
    expected = sum(p * (n if n is not None else float((h != 0).sum())) for p, h, n in ends)
    actual = float((out != 0).sum())
    return expected / actual if actual else 0.0
