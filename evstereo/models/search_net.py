"""The search supernet: the stereo network with trellises of mixed cells in place of derived cells.

Built by the same :class:`~evstereo.models.stereo_net.StereoBase` as the derived
:class:`~evstereo.models.stereo_net.StereoNet` (same config, neurons, stems, cost volume,
padding and heads); only the cells differ. ``arch_parameters()`` are the alphas and betas
(architecture), ``weight_parameters()`` the rest; ``expected_cost`` is the differentiable cost
constraint and ``genotype()`` decodes the current architecture (docs/method.md §3).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from evstereo.models.stereo_net import FeatureStem, MatchingStem, NetConfig, StereoBase, level_sizes
from evstereo.search.cells import Neurons
from evstereo.search.decode import decode_cell, viterbi_path
from evstereo.search.genotypes import NUM_LEVELS, Genotype
from evstereo.search.trellis import Trellis


class SearchFeatureNet(FeatureStem):
    """The feature stem, then a trellis of ``layers`` mixed 2D cells ending at level 0."""

    def __init__(self, cfg: NetConfig, layers: int, neurons_stem: Neurons, neurons: Neurons):
        super().__init__(cfg, neurons_stem)
        c = self.stem_channels
        self.trellis = Trellis(layers, 2, cfg.feature_filters, c, c, neurons, out_level=0)
        self.out_channels = self.trellis.out_channels
        self.max_level = NUM_LEVELS - 1

    def forward(self, x: Tensor) -> Tensor:
        s_pp, s_p = self.stems(x)
        return self.trellis(s_pp, s_p, level_sizes(tuple(s_p.shape[-2:])))


class SearchMatchingNet(MatchingStem):
    """The 3D stem, a trellis of ``layers`` mixed 3D cells ending at level 0, the read-out."""

    def __init__(self, cfg: NetConfig, layers: int, c_in: int, neurons: Neurons):
        super().__init__(cfg, c_in, neurons)
        c = self.stem_channels
        self.trellis = Trellis(layers, 3, cfg.matching_filters, c, c, neurons, out_level=0)
        self.readout = self._readout(self.trellis.out_channels)
        self.max_level = NUM_LEVELS - 1

    def forward(self, volume: Tensor) -> Tensor:
        """[B, T, 2C, D, H, W] -> cost [B, D, H, W]."""
        s_pp = self.stem0(volume)
        s_p = self.stem1(s_pp)
        return self.read(self.trellis(s_pp, s_p, level_sizes(tuple(s_p.shape[-3:]))))


class SearchStereoNet(StereoBase):
    """The supernet: the same stems and heads as StereoNet, with trellises of mixed cells to search."""

    def __init__(self, feature_layers: int = 2, matching_layers: int = 4, config: NetConfig | None = None):
        super().__init__(config,
                         lambda cfg, n_stem, n_feat: SearchFeatureNet(cfg, feature_layers, n_stem, n_feat),
                         lambda cfg, c_in, n_match: SearchMatchingNet(cfg, matching_layers, c_in, n_match))

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.feature_net.trellis.arch_parameters() + self.matching_net.trellis.arch_parameters()

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def expected_cost(self, height: int, width: int) -> Tensor:
        """Expected giga synaptic ops of the cells at this input size (the cost constraint)."""
        base2 = (math.ceil(height / 24) * 8, math.ceil(width / 24) * 8)
        base3 = (math.ceil(self.config.levels / 8) * 8,) + base2
        return self.feature_net.trellis.expected_cost(level_sizes(base2)) + self.matching_net.trellis.expected_cost(level_sizes(base3))

    def genotype(self) -> Genotype:
        """The architecture the current alphas and betas decode to."""
        f, m = self.feature_net.trellis, self.matching_net.trellis
        return Genotype(
            decode_cell(f.alphas.detach().cpu().numpy(), f.primitives),
            viterbi_path(f.betas.detach().cpu().numpy(), end_level=0),
            decode_cell(m.alphas.detach().cpu().numpy(), m.primitives),
            viterbi_path(m.betas.detach().cpu().numpy()),
        )
