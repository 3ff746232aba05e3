"""The search supernet: the stereo network with trellises of mixed cells in place of derived cells.

Built by the same :class:`~evstereo.models.stereo_net.StereoBase` as the derived
:class:`~evstereo.models.stereo_net.StereoNet` (same config, neurons, stems, cost volume,
padding and heads); only the cells differ. ``arch_parameters()`` are the alphas and betas
(architecture), ``weight_parameters()`` the rest; ``energy_probe`` gives the differentiable
energy of the decoded network (the cost constraint) and ``genotype()`` decodes the current
architecture (docs/method.md §3).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

from torch import Tensor, nn

from evstereo.models.stereo_net import FeatureStem, MatchingStem, NetConfig, StereoBase, level_sizes
from evstereo.search.cells import Neurons
from evstereo.search.decode import END_LEVEL
from evstereo.search.energy_cost import EnergyProbe, ProbeReading
from evstereo.search.genotypes import NUM_LEVELS, Genotype
from evstereo.search.trellis import Trellis
from evstereo.snn.energy import EnergyMeter


class SearchFeatureNet(FeatureStem):
    """The feature stem, then a trellis of ``layers`` mixed 2D cells ending at level 0."""

    def __init__(self, cfg: NetConfig, layers: int, neurons_stem: Neurons, neurons: Neurons):
        super().__init__(cfg, neurons_stem)
        c = self.stem_channels
        self.trellis = Trellis(layers, 2, cfg.feature_filters, c, c, neurons, out_level=0)
        self.trellis.decode_end = END_LEVEL["feature"]  # the features are read at level 0
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
        self.levels = cfg.levels

    def forward(self, volume: Tensor) -> Tensor:
        """[B, T, 2C, D, H, W] -> cost [B, D, H, W]."""
        probe = self.trellis.probe
        if probe is None:
            s_pp = self.stem0(volume)
            return self.read(self.trellis(s_pp, self.stem1(s_pp), level_sizes(tuple(volume.shape[-3:]))))
        # the supernet pads the disparities for its coarsest level, a decoded network for the
        # coarsest level of its own path: the volume's layers are charged for the decoded depth
        top = 2 ** max(self.trellis.decode()[1])
        probe.scale = math.ceil(self.levels / top) * top / volume.shape[3]
        s_pp = self.stem0(volume)
        probe.conv_after_trellis(self.stem0.synapse[0], volume, s_pp)  # the features are a mixture
        s_p = self.stem1(s_pp)
        probe.conv(self.stem1.synapse[0], s_pp, s_p, 1.0)
        y = self.trellis(s_pp, s_p, level_sizes(tuple(s_p.shape[-3:])))
        last = y[:, -self.read_steps:].flatten(0, 1)
        probe.conv_after_trellis(self.readout, last, last[:, :1])
        probe.scale = 1.0
        return self.read(y)


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

    @contextlib.contextmanager
    def energy_probe(self, left: Tensor, right: Tensor) -> Iterator[ProbeReading]:
        """For forwards on ``left``/``right`` inside the block: the decoded network's expected
        energy in mJ per frame and its dense MACs in G per frame at this input size, both
        differentiable in the architecture weights (:mod:`evstereo.search.energy_cost`;
        trellises by the probe, the fixed parts by the energy meter)."""
        frames = int(left.shape[0])
        probe = EnergyProbe(frames)
        trellises = (self.feature_net.trellis, self.matching_net.trellis)
        for t in trellises:
            t.probe = probe
        fixed = ("*.trellis.*", "matching_net.stem*", "matching_net.readout")  # charged by the probe
        try:
            with EnergyMeter(self).recording(exclude=fixed) as rec, \
                    EnergyMeter(self, kinds={"*": "analog"}).recording(exclude=fixed) as dense:
                yield ProbeReading(
                    lambda: probe.energy_mj() + rec.report(frames, self.functional_macs(left, right))["energy_mj"],
                    lambda: probe.dense_gmacs() + dense.report(frames, self.functional_macs(left, right))["macs"] / 1e9)
        finally:
            for t in trellises:
                t.probe = None

    def genotype(self) -> Genotype:
        """The architecture the current alphas and betas decode to."""
        return Genotype(*self.feature_net.trellis.decode(), *self.matching_net.trellis.decode())
