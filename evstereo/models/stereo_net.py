"""The spiking stereo network (LEAStereo-style) derived from a genotype, and what the supernet shares.

left/right [B, T, C, H, W] -> shared feature net (stem at 1/3, searched 2D cells, output at
level 0 = 1/3) -> concatenation cost volume over max_disparity/3 levels at 1/3 -> matching net
(3D stem, searched 3D cells) -> a 1-channel 3D read-out averaged over the T steps -> trilinear
upsampling to max_disparity levels at full resolution -> soft-argmin or local-softmax.
``disparity_with_confidence`` gives the same disparity and, beside it, the matching's
confidence in [0, 1] (``heads.confidence``); ``forward`` stays disparity only (training uses it).
``NetConfig.nominal_size`` is the sensor size [h, w] the network is trained around (None: the
DAVIS346's, which inference reads from ``evstereo.datasets.scaling.NOMINAL_HW``).

Time. An input holds ``time_steps`` steps per window; the neurons' membranes decay between
steps with the learnable time constants of their type. A ``stateful`` network is trained and
evaluated on ``context_windows`` consecutive windows at once (one input of K x T steps, the
read-out on the last window: back-propagation through time over K windows) and streams with
its membranes carried from window to window (``streaming``; the live engine resets them on a
seek or a gap): both give the same output, since a LIF call continues exactly where the last
one ended (``evstereo.snn.lif_kernels``).

Hybrid by config: every neuron is spiking unless ``modes`` (fnmatch patterns of module
names -> "spiking" | "analog" | "readout") says otherwise; the default keeps the stems'
first convolutions analog, as in the reference code. Neurons have three types with their own
learnable time constants: ``stem``, ``feature``, ``matching``. Inputs of any size are padded
to a multiple of the total stride and the output is cropped back. Device and dtype follow
the inputs. The search supernet (:mod:`evstereo.models.search_net`) is built by the same
:class:`StereoBase` from the same stems, with trellises of mixed cells in place of the derived cells.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evstereo.events.input_spec import DEFAULT_WINDOW_US, InputSpec
from evstereo.models.cost_volume import concat_cost_volume, concat_volume_conv3d, volume_free_counts
from evstereo.models.heads import HEADS, confidence
from evstereo.search.cells import Cell, Neurons, Resample
from evstereo.search.genotypes import NUM_NODES, STRIDES, Genotype
from evstereo.snn.conv import Conv3d, unhooked
from evstereo.snn.layers import reset_states, set_modes, set_stateful
from evstereo.snn.time_constants import TimeConstants


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
    representation: str = "sbt"  # what the input tensors hold (see evstereo.events.input_spec)
    window_us: int = DEFAULT_WINDOW_US
    modes: dict = field(default_factory=lambda: {"feature_net.stem0": "analog", "feature_net.stem1": "analog"})
    nominal_size: list | None = None  # [h, w] the sensor size trained around (None: DAVIS346, 260x346)
    stateful: bool = False  # membranes carried from window to window when streaming (module doc)
    context_windows: int = 1  # windows of context before each output in training and evaluation

    def __post_init__(self) -> None:
        for name in ("max_disparity", "in_channels", "time_steps", "feature_filters", "matching_filters",
                     "local_radius", "window_us", "context_windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or not self.threshold > 0:
            raise ValueError(f"threshold must be a positive number, not {self.threshold!r}")
        for name in ("learn_time_constants", "stateful"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if self.context_windows > 1 and not self.stateful:
            raise ValueError("context_windows > 1 needs stateful: true (a stateless network sees one window)")
        if not isinstance(self.representation, str):
            raise ValueError(f"representation must be a name, not {self.representation!r}")
        for name in ("decay", "modes"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping, not {getattr(self, name)!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {sorted(HEADS)}, not {self.head!r}")
        if self.max_disparity < 3:
            raise ValueError("max_disparity must be at least 3")
        if self.nominal_size is not None:
            size = self.nominal_size
            if (not isinstance(size, (list, tuple)) or len(size) != 2
                    or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)):
                raise ValueError(f"nominal_size must be [height, width] in pixels, not {size!r}")
            self.nominal_size = [int(size[0]), int(size[1])]  # a list: the same in YAML and checkpoints

    @property
    def input_spec(self) -> InputSpec:
        """The input this network is built for (representation, bins, time steps, window)."""
        return InputSpec.for_network(self.representation, self.in_channels, self.time_steps, self.window_us)

    @property
    def context_spec(self) -> InputSpec:
        """What one output is computed from in training and evaluation: ``context_windows``
        consecutive windows as one input of ``context_windows * time_steps`` steps (the same as
        streaming them with the state carried, from rest ``context_windows`` windows back)."""
        k = self.context_windows
        return InputSpec.for_network(self.representation, self.in_channels, self.time_steps * k, self.window_us * k)

    @property
    def levels(self) -> int:
        """Disparity levels at 1/3 resolution."""
        return self.max_disparity // 3

    def as_dict(self) -> dict:
        return asdict(self)


def level_sizes(base: tuple[int, ...], n: int = 4) -> list[tuple[int, ...]]:
    """Sizes at levels 0..n-1 (each half the previous) from the level-0 size ``base``."""
    return [tuple(v // 2**s for v in base) for s in range(n)]


class FeatureStem(nn.Module):
    """The feature nets' common part: the stem to 1/3 (``stem0``..``stem2``), ``stem_channels`` wide.

    Subclasses add the cells (derived: :class:`FeatureNet`; searched: the supernet's trellis).
    """

    def __init__(self, cfg: NetConfig, neurons_stem: Neurons):
        super().__init__()
        c = self.stem_channels = NUM_NODES * cfg.feature_filters
        self.stem0 = neurons_stem.conv(cfg.in_channels, max(c // 2, 1), 3, 1, 2)
        self.stem1 = neurons_stem.conv(max(c // 2, 1), c, 3, 3, 2)
        self.stem2 = neurons_stem.conv(c, c, 3, 1, 2)

    def stems(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The two cell inputs (two layers back, previous layer) at 1/3."""
        s_pp = self.stem1(self.stem0(x))
        return s_pp, self.stem2(s_pp)


class FeatureNet(FeatureStem):
    """Stem to 1/3, then derived cells along ``path`` (must end at level 0)."""

    def __init__(self, cfg: NetConfig, genotype: Genotype, neurons_stem: Neurons, neurons: Neurons):
        super().__init__(cfg, neurons_stem)
        c = self.stem_channels
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
        s_pp, s_p = self.stems(x)
        sizes = level_sizes(tuple(s_p.shape[-2:]))
        for cell in self.cells:
            s_pp, s_p = s_p, cell(s_pp, s_p, sizes[cell.level])
        return self.out(s_p, sizes[0]) if isinstance(self.out, Resample) else s_p


class MatchingStem(nn.Module):
    """The matching nets' common part: the 3D stem (``stem0``, ``stem1``) and the 1-channel read-out.

    Subclasses add the cells between them (derived: :class:`MatchingNet`; searched: the
    supernet's trellis) and create ``self.readout`` for their output width with ``_readout``.
    """

    def __init__(self, cfg: NetConfig, c_in: int, neurons: Neurons):
        super().__init__()
        c = self.stem_channels = NUM_NODES * cfg.matching_filters
        self.read_steps = cfg.time_steps  # an input of several windows is read out on its last
        self.stem0 = neurons.conv(c_in, c, 3, 1, 3)
        self.stem1 = neurons.conv(c, c, 3, 1, 3)
        # counted as computed at inference, without building the volume (both network kinds)
        self.stem0.synapse[0].energy_counts = volume_free_counts

    @staticmethod
    def _readout(channels: int) -> Conv3d:
        return Conv3d(channels, 1, 3, 1, 1)

    def read(self, y: Tensor) -> Tensor:
        """[B, T, C, D, H, W] -> cost [B, D, H, W]: the read-out averaged over the last window's
        steps (all T for an input of one window; earlier windows are context)."""
        y = y[:, -self.read_steps:]
        return self.readout(y.flatten(0, 1)).unflatten(0, y.shape[:2]).mean(1)[:, 0]


class MatchingNet(MatchingStem):
    """3D stem on the cost volume, derived 3D cells along ``path``, 1-channel read-out at level 0."""

    def __init__(self, cfg: NetConfig, genotype: Genotype, c_in: int, neurons: Neurons):
        super().__init__(cfg, c_in, neurons)
        c = self.stem_channels
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
        self.readout = self._readout(c if self.up is not None else chans[-1])
        self.max_level = max([0, *self.path])

    def forward(self, volume: Tensor) -> Tensor:
        """[B, T, 2C, D, H, W] -> cost [B, D, H, W] (the read-out averaged over T)."""
        return self._from_stem(self.stem0(volume))

    def from_features(self, left: Tensor, right: Tensor, levels: int) -> Tensor:
        """Same as ``forward(concat_cost_volume(left, right, levels))`` for [B, T, C, H, W] features,
        without building the volume when the first layer allows (see ``concat_volume_conv3d``)."""
        conv = self.stem0.synapse[0]
        if not (self.stem0.plain and unhooked(conv) and conv.stride == (1, 1, 1) and conv.dilation == (1, 1, 1)
                and conv.groups == 1 and conv.padding == tuple(k // 2 for k in conv.kernel_size)):
            return self(concat_cost_volume(left, right, levels))
        current = concat_volume_conv3d(left.flatten(0, 1), right.flatten(0, 1), levels, conv.weight, conv.bias)
        current = self.stem0.synapse[1:](current).unflatten(0, left.shape[:2])
        return self._from_stem(self.stem0.fire(current))

    def _from_stem(self, s_pp: Tensor) -> Tensor:
        s_p = self.stem1(s_pp)
        sizes = level_sizes(tuple(s_p.shape[-3:]))
        for cell in self.cells:
            s_pp, s_p = s_p, cell(s_pp, s_p, sizes[cell.level])
        if self.up is not None:
            s_p = self.up(s_p, sizes[0])
        return self.read(s_p)


FeatureFactory = Callable[[NetConfig, Neurons, Neurons], FeatureStem]
MatchingFactory = Callable[[NetConfig, int, Neurons], MatchingStem]


class StereoBase(nn.Module):
    """What the derived network and the supernet share: config, time constants and neurons, the
    padding, the cost volume between the feature and matching nets, the up-sampling and heads.

    ``feature_net(cfg, neurons_stem, neurons_feature)`` and ``matching_net(cfg, c_in,
    neurons_matching)`` build the two halves; ``c_in`` is twice the feature net's
    ``out_channels`` (the concatenation volume). forward(left, right) -> disparity [B, H, W] in px.
    """

    def __init__(self, config: NetConfig | None, feature_net: FeatureFactory, matching_net: MatchingFactory):
        super().__init__()
        cfg = self.config = config or NetConfig()
        self.time_constants = TimeConstants(cfg.decay, learnable=cfg.learn_time_constants)
        n_stem, n_feat, n_match = (Neurons(self.time_constants, kind, threshold=cfg.threshold)
                                   for kind in ("stem", "feature", "matching"))
        self.feature_net = feature_net(cfg, n_stem, n_feat)
        self.matching_net = matching_net(cfg, 2 * self.feature_net.out_channels, n_match)
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
    def input_spec(self) -> InputSpec:
        return self.config.input_spec

    @property
    def context_spec(self) -> InputSpec:
        return self.config.context_spec

    def streaming(self, on: bool = True) -> None:
        """Carry the membranes from call to call (each call the next window of one stream), from
        rest; off: every call starts from rest. For networks trained ``stateful``."""
        set_stateful(self, on)

    def reset_state(self) -> None:
        """Forget the carried membranes (a seek, a gap in the windows, a new recording)."""
        reset_states(self)

    @property
    def nominal_size(self) -> tuple[int, int] | None:
        """(h, w) of the sensor the network is trained around; None: the default (DAVIS346)."""
        size = self.config.nominal_size
        return None if size is None else (int(size[0]), int(size[1]))

    def _padded_size(self, h: int, w: int) -> tuple[int, int]:
        """(h, w) padded (bottom, right) to what the deepest level's strides need."""
        mult = STRIDES[0] * 2 ** max(self.feature_net.max_level, self.matching_net.max_level)
        return h + (-h) % mult, w + (-w) % mult

    def _pad(self, x: Tensor) -> tuple[Tensor, int, int]:
        h, w = x.shape[-2:]
        hp, wp = self._padded_size(h, w)
        return (F.pad(x, (0, wp - w, 0, hp - h)) if (hp, wp) != (h, w) else x), h, w

    def coarse_cost(self, left: Tensor, right: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Scores over the ``levels`` disparities at 1/3 of the padded input: ([B, levels, Hp/3, Wp/3], (H, W)).

        (H, W) is the unpadded input size; the padding is at the bottom and the right.
        """
        if left.shape != right.shape or left.dim() != 5:
            raise ValueError(f"left/right must both be [B, T, C, H, W], got {tuple(left.shape)} and {tuple(right.shape)}")
        b = left.shape[0]
        both, h, w = self._pad(torch.cat([left, right], 0))
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

    def functional_macs(self, left: Tensor, right: Tensor) -> dict[str, int]:
        """MACs of the parts that are functions, not layers, for ``EnergyMeter`` (whole batch):
        the trilinear upsampling of the cost (8 weighted neighbours per full-resolution score)
        and the read-out (softmax and expectation over the levels: an exp, a sum and a
        multiply-add per level and pixel; local_softmax adds the arg max's comparisons over
        all levels and then works on its 2r + 1 levels). The confidence read-out is not counted
        (``forward`` does not compute it)."""
        b, h, w = left.shape[0], left.shape[-2], left.shape[-1]
        hp, wp = self._padded_size(h, w)
        levels = 3 * self.config.levels
        per_level = levels if self.config.head != "local_softmax" else 2 * self.config.local_radius + 1
        readout = b * h * w * (3 * per_level + (levels if self.config.head == "local_softmax" else 0))
        return {"upsampling (trilinear)": 8 * b * levels * hp * wp, f"read-out ({self.config.head})": readout}

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return self.readout(self.cost(left, right)).clamp(0, self.config.max_disparity)

    def disparity_with_confidence(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        """(disparity [B, H, W] px, as ``forward`` gives it; confidence [B, H, W] in [0, 1])."""
        cost = self.cost(left, right)
        disparity = self.readout(cost).clamp(0, self.config.max_disparity)
        return disparity, confidence(cost, disparity)


class StereoNet(StereoBase):
    """The derived spiking stereo network. forward(left, right) -> disparity [B, H, W] in px."""

    def __init__(self, genotype: Genotype, config: NetConfig | None = None):
        super().__init__(config,
                         lambda cfg, n_stem, n_feat: FeatureNet(cfg, genotype, n_stem, n_feat),
                         lambda cfg, c_in, n_match: MatchingNet(cfg, genotype, c_in, n_match))
        self.genotype = genotype
