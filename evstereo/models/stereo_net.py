"""The spiking stereo network (LEAStereo-style), derived from a genotype or as the search supernet.

left/right [B, T, C, H, W] -> shared feature net (stem at 1/3, searched 2D cells, output at
level 0 = 1/3) -> concatenation cost volume over max_disparity/3 levels at 1/3 -> matching net
(3D stem, searched 3D cells) -> a 1-channel 3D read-out averaged over the T steps -> trilinear
upsampling to max_disparity levels at full resolution -> soft-argmin or local-softmax.

Hybrid by config: every neuron is spiking unless ``modes`` (fnmatch patterns of module
names -> "spiking" | "analog" | "readout") says otherwise; the default keeps the stems'
first convolutions analog, as in the reference code. Neurons have three types with their own
learnable time constants: ``stem``, ``feature``, ``matching``. Inputs of any size are padded
to a multiple of the total stride and the output is cropped back. Device and dtype follow
the inputs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evstereo.models.cost_volume import concat_cost_volume, concat_volume_conv3d
from evstereo.models.heads import HEADS
from evstereo.search.cells import Cell, Neurons, Resample
from evstereo.search.genotypes import NUM_NODES, STRIDES, Genotype
from evstereo.search.trellis import Trellis
from evstereo.snn.conv import Conv3d
from evstereo.snn.layers import set_modes
from evstereo.snn.neuron import TimeConstants


@dataclass
class NetConfig:
    max_disparity: int = 63
    in_channels: int = 5
    time_steps: int = 1
    feature_filters: int = 8  # node width at level s is filters * 2**s; cells output 3x that
    matching_filters: int = 8
    head: str = "soft_argmin"  # or "local_softmax"
    local_radius: int = 2
    decay: dict = field(default_factory=lambda: {"stem": 0.2, "feature": 0.2, "matching": 0.2})
    learn_time_constants: bool = True
    threshold: float = 0.5
    representation: str = "sbt"  # what the input tensors hold (see evstereo.datasets.samples)
    window_us: int = 50_000
    modes: dict = field(default_factory=lambda: {"feature_net.stem0": "analog", "feature_net.stem1": "analog"})

    def __post_init__(self) -> None:
        for name in ("max_disparity", "in_channels", "time_steps", "feature_filters", "matching_filters",
                     "local_radius", "window_us"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or not self.threshold > 0:
            raise ValueError(f"threshold must be a positive number, not {self.threshold!r}")
        if not isinstance(self.learn_time_constants, bool):
            raise ValueError(f"learn_time_constants must be true or false, not {self.learn_time_constants!r}")
        if not isinstance(self.representation, str):
            raise ValueError(f"representation must be a name, not {self.representation!r}")
        for name in ("decay", "modes"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping, not {getattr(self, name)!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {sorted(HEADS)}, not {self.head!r}")
        if self.max_disparity < 3:
            raise ValueError("max_disparity must be at least 3")

    @property
    def input_spec(self) -> dict:
        """Keyword arguments of the SampleSpec that produces this network's input."""
        if self.representation in ("counts", "spikes"):
            if self.in_channels != 2:
                raise ValueError(f"{self.representation} input has 2 channels (polarities), not {self.in_channels}")
            bins = self.time_steps
        else:
            bins = self.in_channels * self.time_steps
        return {"representation": self.representation, "bins": bins, "time_steps": self.time_steps,
                "window_us": self.window_us}

    @property
    def levels(self) -> int:
        """Disparity levels at 1/3 resolution."""
        return self.max_disparity // 3

    def as_dict(self) -> dict:
        return asdict(self)


def _sizes(base: tuple[int, ...], n: int = 4) -> list[tuple[int, ...]]:
    return [tuple(v // 2**s for v in base) for s in range(n)]


class FeatureNet(nn.Module):
    """Stem to 1/3, then derived cells along ``path`` (must end at level 0)."""

    def __init__(self, cfg: NetConfig, genotype: Genotype, neurons_stem: Neurons, neurons: Neurons):
        super().__init__()
        c = NUM_NODES * cfg.feature_filters
        self.stem0 = neurons_stem.conv(cfg.in_channels, max(c // 2, 1), 3, 1, 2)
        self.stem1 = neurons_stem.conv(max(c // 2, 1), c, 3, 3, 2)
        self.stem2 = neurons_stem.conv(c, c, 3, 1, 2)
        self.path = genotype.feature_path
        levels, chans = [0, 0], [c, c]
        self.cells = nn.ModuleList()
        for level in self.path:
            cell = Cell(genotype.feature_cell, chans[-2], chans[-1], levels[-2], levels[-1], level,
                        cfg.feature_filters * 2**level, 2, neurons)
            self.cells.append(cell)
            levels.append(level)
            chans.append(cell.out_channels)
        self.out = Resample(chans[-1], c, levels[-1], 0, 2, neurons) if levels[-1] != 0 else nn.Identity()
        self.out_channels = c if levels[-1] != 0 else chans[-1]
        self.max_level = max([0, *self.path])

    def forward(self, x: Tensor) -> Tensor:
        s_pp = self.stem1(self.stem0(x))
        s_p = self.stem2(s_pp)
        sizes = _sizes(tuple(s_p.shape[-2:]))
        for cell in self.cells:
            s_pp, s_p = s_p, cell(s_pp, s_p, sizes[cell.level])
        return self.out(s_p, sizes[0]) if isinstance(self.out, Resample) else s_p


class MatchingNet(nn.Module):
    """3D stem on the cost volume, derived 3D cells along ``path``, 1-channel read-out at level 0."""

    def __init__(self, cfg: NetConfig, genotype: Genotype, c_in: int, neurons: Neurons):
        super().__init__()
        c = NUM_NODES * cfg.matching_filters
        self.stem0 = neurons.conv(c_in, c, 3, 1, 3)
        self.stem1 = neurons.conv(c, c, 3, 1, 3)
        self.path = genotype.matching_path
        levels, chans = [0, 0], [c, c]
        self.cells = nn.ModuleList()
        for level in self.path:
            cell = Cell(genotype.matching_cell, chans[-2], chans[-1], levels[-2], levels[-1], level,
                        cfg.matching_filters * 2**level, 3, neurons)
            self.cells.append(cell)
            levels.append(level)
            chans.append(cell.out_channels)
        self.up = Resample(chans[-1], c, levels[-1], 0, 3, neurons) if levels[-1] != 0 else None
        self.readout = Conv3d(c if self.up is not None else chans[-1], 1, 3, 1, 1)
        self.max_level = max([0, *self.path])

    def forward(self, volume: Tensor) -> Tensor:
        """[B, T, 2C, D, H, W] -> cost [B, D, H, W] (the read-out averaged over T)."""
        return self._from_stem(self.stem0(volume))

    def from_features(self, left: Tensor, right: Tensor, levels: int) -> Tensor:
        """Same as ``forward(concat_cost_volume(left, right, levels))`` for [B, T, C, H, W] features,
        without building the volume when the first layer allows (see ``concat_volume_conv3d``)."""
        conv = self.stem0.synapse[0]
        if not (self.stem0.plain and _unhooked(conv) and conv.stride == (1, 1, 1) and conv.dilation == (1, 1, 1)
                and conv.groups == 1 and conv.padding == tuple(k // 2 for k in conv.kernel_size)):
            return self(concat_cost_volume(left, right, levels))
        current = concat_volume_conv3d(left.flatten(0, 1), right.flatten(0, 1), levels, conv.weight, conv.bias)
        current = self.stem0.synapse[1:](current).unflatten(0, left.shape[:2])
        return self._from_stem(self.stem0.fire(current))

    def _from_stem(self, s_pp: Tensor) -> Tensor:
        s_p = self.stem1(s_pp)
        sizes = _sizes(tuple(s_p.shape[-3:]))
        for cell in self.cells:
            s_pp, s_p = s_p, cell(s_pp, s_p, sizes[cell.level])
        if self.up is not None:
            s_p = self.up(s_p, sizes[0])
        y = self.readout(s_p.flatten(0, 1)).unflatten(0, s_p.shape[:2])
        return y.mean(1)[:, 0]


def _unhooked(module: nn.Module) -> bool:
    """No forward hooks see this module's input (the energy meter hooks convolutions)."""
    from torch.nn.modules import module as _m

    return not (module._forward_hooks or module._forward_pre_hooks or _m._global_forward_hooks
                or _m._global_forward_pre_hooks)


class StereoNet(nn.Module):
    """The derived spiking stereo network. forward(left, right) -> disparity [B, H, W] in px."""

    def __init__(self, genotype: Genotype, config: NetConfig | None = None):
        super().__init__()
        cfg = self.config = config or NetConfig()
        self.genotype = genotype
        self.time_constants = TimeConstants(cfg.decay, learnable=cfg.learn_time_constants)
        kw = {"threshold": cfg.threshold}
        n_stem = Neurons(self.time_constants, "stem", **kw)
        n_feat = Neurons(self.time_constants, "feature", **kw)
        n_match = Neurons(self.time_constants, "matching", **kw)
        self.feature_net = FeatureNet(cfg, genotype, n_stem, n_feat)
        self.matching_net = MatchingNet(cfg, genotype, 2 * self.feature_net.out_channels, n_match)
        if cfg.modes:
            set_modes(self, cfg.modes)

    # the public attributes the apps rely on
    @property
    def time_steps(self) -> int:
        return self.config.time_steps

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    @property
    def max_disparity(self) -> int:
        return self.config.max_disparity

    @property
    def input_spec(self) -> dict:
        return self.config.input_spec

    def _pad(self, x: Tensor, max_level: int) -> tuple[Tensor, int, int]:
        mult = STRIDES[0] * 2**max_level
        h, w = x.shape[-2:]
        ph, pw = (-h) % mult, (-w) % mult
        return (F.pad(x, (0, pw, 0, ph)) if ph or pw else x), h, w

    def coarse_cost(self, left: Tensor, right: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Scores over the ``levels`` disparities at 1/3 of the padded input: ([B, levels, Hp/3, Wp/3], (H, W)).

        (H, W) is the unpadded input size; the padding is at the bottom and the right.
        """
        if left.shape != right.shape or left.dim() != 5:
            raise ValueError(f"left/right must both be [B, T, C, H, W], got {tuple(left.shape)} and {tuple(right.shape)}")
        max_level = max(self.feature_net.max_level, self.matching_net.max_level)
        b = left.shape[0]
        both, h, w = self._pad(torch.cat([left, right], 0), max_level)
        feats = self.feature_net(both)  # shared weights: both cameras in one batch
        fl, fr = feats[:b], feats[b:]
        levels = self.config.levels
        d_pad = math.ceil(levels / 2**self.matching_net.max_level) * 2**self.matching_net.max_level
        if isinstance(self.matching_net, MatchingNet):
            return self.matching_net.from_features(fl, fr, d_pad)[:, :levels], (h, w)
        return self.matching_net(concat_cost_volume(fl, fr, d_pad))[:, :levels], (h, w)

    def cost(self, left: Tensor, right: Tensor) -> Tensor:
        """Scores over max_disparity levels at full resolution: [B, 3*levels, H, W]."""
        coarse, (h, w) = self.coarse_cost(left, right)
        full = F.interpolate(coarse[:, None], size=(3 * coarse.shape[1], 3 * coarse.shape[-2], 3 * coarse.shape[-1]),
                             mode="trilinear", align_corners=False)[:, 0]
        return full[..., :h, :w]

    def readout(self, cost: Tensor) -> Tensor:
        if self.config.head == "local_softmax":
            return HEADS["local_softmax"](cost, self.config.local_radius)
        return HEADS["soft_argmin"](cost)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return self.readout(self.cost(left, right)).clamp(0, self.config.max_disparity)


class SearchStereoNet(StereoNet):
    """The supernet: the same stems and heads, with trellises of mixed cells to search.

    ``arch_parameters()`` are the alphas and betas (architecture); ``weight_parameters()``
    the rest. ``genotype()`` decodes the current architecture.
    """

    def __init__(self, feature_layers: int = 2, matching_layers: int = 4, config: NetConfig | None = None):
        nn.Module.__init__(self)
        cfg = self.config = config or NetConfig()
        self.time_constants = TimeConstants(cfg.decay, learnable=cfg.learn_time_constants)
        kw = {"threshold": cfg.threshold}
        n_stem = Neurons(self.time_constants, "stem", **kw)
        n_feat = Neurons(self.time_constants, "feature", **kw)
        n_match = Neurons(self.time_constants, "matching", **kw)
        self.feature_net = _SearchFeatureNet(cfg, feature_layers, n_stem, n_feat)
        self.matching_net = _SearchMatchingNet(cfg, matching_layers, 2 * self.feature_net.out_channels, n_match)
        if cfg.modes:
            set_modes(self, cfg.modes)

    def arch_parameters(self) -> list[nn.Parameter]:
        return self.feature_net.trellis.arch_parameters() + self.matching_net.trellis.arch_parameters()

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def expected_cost(self, height: int, width: int) -> Tensor:
        """Expected giga synaptic ops of the cells at this input size (the cost constraint)."""
        base2 = (math.ceil(height / 24) * 8, math.ceil(width / 24) * 8)
        base3 = (math.ceil(self.config.levels / 8) * 8,) + base2
        return self.feature_net.trellis.expected_cost(_sizes(base2)) + self.matching_net.trellis.expected_cost(_sizes(base3))

    def genotype(self) -> Genotype:
        from evstereo.search.decode import decode_cell, viterbi_path

        f, m = self.feature_net.trellis, self.matching_net.trellis
        return Genotype(
            decode_cell(f.alphas.detach().cpu().numpy(), f.primitives),
            viterbi_path(f.betas.detach().cpu().numpy(), end_level=0),
            decode_cell(m.alphas.detach().cpu().numpy(), m.primitives),
            viterbi_path(m.betas.detach().cpu().numpy()),
        )


class _SearchFeatureNet(nn.Module):
    def __init__(self, cfg: NetConfig, layers: int, neurons_stem: Neurons, neurons: Neurons):
        super().__init__()
        c = NUM_NODES * cfg.feature_filters
        self.stem0 = neurons_stem.conv(cfg.in_channels, max(c // 2, 1), 3, 1, 2)
        self.stem1 = neurons_stem.conv(max(c // 2, 1), c, 3, 3, 2)
        self.stem2 = neurons_stem.conv(c, c, 3, 1, 2)
        self.trellis = Trellis(layers, 2, cfg.feature_filters, c, c, neurons, out_level=0)
        self.out_channels = self.trellis.out_channels
        self.max_level = 3

    def forward(self, x: Tensor) -> Tensor:
        s_pp = self.stem1(self.stem0(x))
        s_p = self.stem2(s_pp)
        return self.trellis(s_pp, s_p, _sizes(tuple(s_p.shape[-2:])))


class _SearchMatchingNet(nn.Module):
    def __init__(self, cfg: NetConfig, layers: int, c_in: int, neurons: Neurons):
        super().__init__()
        c = NUM_NODES * cfg.matching_filters
        self.stem0 = neurons.conv(c_in, c, 3, 1, 3)
        self.stem1 = neurons.conv(c, c, 3, 1, 3)
        self.trellis = Trellis(layers, 3, cfg.matching_filters, c, c, neurons, out_level=0)
        self.readout = Conv3d(self.trellis.out_channels, 1, 3, 1, 1)
        self.max_level = 3

    def forward(self, volume: Tensor) -> Tensor:
        s_pp = self.stem0(volume)
        s_p = self.stem1(s_pp)
        y = self.trellis(s_pp, s_p, _sizes(tuple(s_p.shape[-3:])))
        return self.readout(y.flatten(0, 1)).unflatten(0, y.shape[:2]).mean(1)[:, 0]
