"""The layer-level search space: a trellis of mixed cells over levels 1/3, 1/6, 1/12, 1/24.

Layer l has a cell at every level s it can reach (s <= l + 1, since the stem sits at level
0). The cell at (l, s) is fed by the previous layer's cells at s - 1 (downsampling), s and
s + 1 (upsampling), each through a cell of its own; their outputs are summed with the move
probabilities softmax(beta) of the cell they come from (Auto-DeepLab). The network's output
sums every last-layer level, resampled to ``out_level``, weighted by the probability of
ending there (forward algorithm over the trellis), so the last betas are trained too.

The cost constraint: ``expected_cost`` is the trellis's synaptic work expected under the
architecture weights — each cell's edge costs weighted by softmax(alpha) (skip costs
nothing) and by the probability that the path visits the cell — differentiable in both.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evstereo.search.cells import MixedCell, Neurons, Resample
from evstereo.search.decode import MOVES, NUM_EDGES, valid_moves
from evstereo.search.genotypes import NUM_LEVELS, NUM_NODES, PRIMITIVES


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

    def forward(self, s_pp: Tensor, s_p: Tensor, sizes: list[tuple[int, ...]]) -> Tensor:
        """``sizes[s]``: spatial size at level s. Returns [B, T, C, ...] at ``out_level``."""
        weights = torch.softmax(self.alphas, dim=-1)
        probs = move_probabilities(self.betas)
        outs = {(-2, 0): s_pp, (-1, 0): s_p}
        for layer in range(self.n_layers):
            for s in range(min(layer + 2, NUM_LEVELS)):
                total = None
                for m, move in enumerate(MOVES):
                    key = f"{layer}_{s}_{m}"
                    if key not in self.cells:
                        continue
                    src = s - move
                    pp = outs[(layer - 2, self._pp_level(layer, s, self.out_ch))]
                    y = probs[layer, src, m] * self.cells[key](pp, outs[(layer - 1, src)], sizes[s], weights)
                    total = y if total is None else total + y
                outs[(layer, s)] = total
        marg = level_marginals(self.betas)[-1]
        last = self.n_layers - 1
        out = None
        for s, head in self.heads.items():
            y = marg[int(s)] * head(outs[(last, int(s))], sizes[self.out_level])
            out = y if out is None else out + y
        return out

    def expected_cost(self, sizes: list[tuple[int, ...]]) -> Tensor:
        """Expected synaptic operations (per input spike rate 1) of the path, in giga-ops.

        Each snn edge: channels^2 x kernel volume x positions at its level; skip and zero
        cost nothing. Differentiable in alphas (op choice) and betas (level choice).
        """
        weights = torch.softmax(self.alphas, dim=-1)
        is_conv = torch.tensor([p.startswith("snn") for p in self.primitives], dtype=weights.dtype,
                               device=weights.device)
        edge_cost = (weights * is_conv).sum()  # expected conv edges per cell (of NUM_EDGES)
        kvol = 3 ** self.dim
        marg = level_marginals(self.betas)
        cost = weights.new_zeros(())
        for s in range(NUM_LEVELS):
            ch = self.filters * 2**s
            positions = 1
            for v in sizes[s]:
                positions *= v
            cost = cost + marg[:, s].sum() * edge_cost * ch * ch * kvol * positions
        return cost / 1e9
