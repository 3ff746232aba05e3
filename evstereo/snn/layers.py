"""Spiking layers: a synapse (conv + BN, linear, ...) feeding a multi-step LIF neuron; hybrid by config.

A :class:`SpikingLayer` takes ``[B, T, C, ...]`` inputs, applies its synapse to all time steps
at once (time folded into the batch, so BatchNorm statistics are taken over B * T samples:
our choice; the reference code normalised each step separately) and feeds the currents to
its :class:`~evstereo.snn.neuron.LIF`. Switching the neuron's mode to ``"analog"`` turns the
layer into conv + BN + ReLU and ``"readout"`` into a non-firing membrane; :func:`set_modes`
does this by name pattern from a config, and the energy meter follows automatically (a
layer's cost is judged by the values it receives, see :mod:`evstereo.snn.energy`).

The layer implements the DGS protocol of :mod:`evstereo.snn.surrogate` (``dgs_*`` methods):
candidate synapse copies and mixing logits live outside the module's parameters and
state_dict, only for the duration of a DGS phase.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from evstereo.snn.conv import Conv2d, Conv3d
from evstereo.snn.neuron import LIF, MODES
from evstereo.snn.surrogate import MIN_CANDIDATE_B

_CONV = {1: nn.Conv1d, 2: Conv2d, 3: Conv3d}  # the fast CPU paths of evstereo.snn.conv
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


@dataclass
class _DGSState:
    candidates: nn.ModuleList
    deltas: list[float]
    alpha: nn.Parameter
    selected: int | str | None = None


class SpikingLayer(nn.Module):
    """``neuron(synapse(x))`` over ``[B, T, ...]`` inputs, the synapse applied per time step.

    ``synapse`` is any module mapping ``[N, C_in, ...]`` to ``[N, C_out, ...]`` (N = B * T).
    """

    def __init__(self, synapse: nn.Module, neuron: LIF) -> None:
        super().__init__()
        self.synapse = synapse
        self.neuron = neuron
        object.__setattr__(self, "_dgs", None)

    @property
    def mode(self) -> str:
        return self.neuron.mode

    @mode.setter
    def mode(self, value: str) -> None:
        self.neuron.mode = value

    @staticmethod
    def _per_step(synapse: nn.Module, x: Tensor) -> Tensor:
        y = synapse(x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])

    def _current(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Membrane currents ``[B, T, C_out, ...]`` and the surrogate b override (DGS candidates)."""
        if x.dim() < 3:
            raise ValueError(f"spiking layer input must be [B, T, C, ...], got shape {tuple(x.shape)}")
        st = self._dgs
        if st is None or st.selected is None:
            return self._per_step(self.synapse, x), None
        if st.selected == "mix":
            w = torch.softmax(st.alpha, 0)
            cur = sum(w[k] * self._per_step(c, x) for k, c in enumerate(st.candidates))
            return cur, None
        k = st.selected
        b = (self.neuron.b + st.deltas[k]).clamp(min=MIN_CANDIDATE_B)
        return self._per_step(st.candidates[k], x), b

    def forward(self, x: Tensor) -> Tensor:
        cur, b = self._current(x)
        return self.neuron(cur, b=b)

    @property
    def plain(self) -> bool:
        """Whether the layer is its own synapse then its neuron (no DGS candidates in use), so a
        caller may compute the synapse's currents another way and pass them to :meth:`fire`."""
        return self._dgs is None or self._dgs.selected is None

    def fire(self, current: Tensor) -> Tensor:
        """The neuron's output for synapse currents ``[B, T, C_out, ...]`` (of a plain layer)."""
        return self.neuron(current)

    # --- DGS protocol (see evstereo.snn.surrogate) ---
    @property
    def dgs_enabled(self) -> bool:
        return self.neuron.mode == "spiking"

    @property
    def surrogate_b(self) -> Tensor:
        return self.neuron.b

    def dgs_attach(self, deltas: Sequence[float], alpha_init: float = 1e-3) -> None:
        """Create one synapse copy per candidate delta and the mixing logits."""
        cands = nn.ModuleList(copy.deepcopy(self.synapse) for _ in deltas)
        for p in cands.parameters():
            p.requires_grad_(True)
        ref = self.neuron.b
        alpha = nn.Parameter(torch.full((len(deltas),), float(alpha_init), device=ref.device, dtype=torch.float32))
        object.__setattr__(self, "_dgs", _DGSState(cands, [float(d) for d in deltas], alpha))

    def dgs_select(self, which: int | str | None) -> None:
        """Use candidate ``which`` (int), the softmax mixture (``"mix"``) or the layer's own synapse (None)."""
        if self._dgs is None:
            raise RuntimeError("dgs_select before dgs_attach")
        self._dgs.selected = which

    def dgs_candidate_parameters(self, k: int) -> list[nn.Parameter]:
        return list(self._dgs.candidates[k].parameters())

    @property
    def dgs_alpha(self) -> nn.Parameter:
        return self._dgs.alpha

    def dgs_detach(self, adopt: int | None = None) -> None:
        """Drop the candidates; with ``adopt=k`` first copy candidate k's weights into the synapse."""
        if self._dgs is not None and adopt is not None:
            self.synapse.load_state_dict(self._dgs.candidates[adopt].state_dict())
        object.__setattr__(self, "_dgs", None)


class SpikingConv(SpikingLayer):
    """Conv (1D/2D/3D by ``dim``) + optional BatchNorm + LIF over ``[B, T, C, *spatial]``.

    ``padding=None`` keeps the size at stride 1 (``dilation * (k // 2)``). Neuron options
    (``threshold``, ``decay``, ``reset``, ``surrogate``, ``b``, ``time_constants``,
    ``neuron_type``, ``mode``, ``detach_reset``) are passed to :class:`LIF`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        *,
        dim: int = 2,
        bn: bool = True,
        bias: bool | None = None,
        **neuron_kwargs,
    ) -> None:
        if dim not in _CONV:
            raise ValueError(f"dim must be 1, 2 or 3, got {dim}")
        if padding is None:
            padding = dilation * (kernel_size // 2)
        conv = _CONV[dim](in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                          bias=(not bn) if bias is None else bias)
        synapse = nn.Sequential(conv, _BN[dim](out_channels)) if bn else nn.Sequential(conv)
        super().__init__(synapse, LIF(**neuron_kwargs))


class SpikingLinear(SpikingLayer):
    """Linear + LIF over ``[B, T, F]`` inputs (no normalisation)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, **neuron_kwargs) -> None:
        super().__init__(nn.Linear(in_features, out_features, bias=bias), LIF(**neuron_kwargs))


def set_modes(model: nn.Module, modes: Mapping[str, str] | str) -> dict[str, str]:
    """Switch neurons between ``"spiking"``, ``"analog"`` and ``"readout"``.

    ``modes`` maps fnmatch patterns of module names to modes (later patterns win, and a
    pattern matches a :class:`SpikingLayer` or a bare :class:`LIF`), e.g.
    ``{"*": "spiking", "stem.*": "analog"}``; a plain string sets every neuron. Returns the
    resulting :func:`get_modes`. Raises if a pattern matches nothing (a typo in a config).
    """
    if isinstance(modes, str):
        modes = {"*": modes}
    for mode in modes.values():
        if mode not in MODES:
            raise ValueError(f"unknown neuron mode {mode!r}; choose one of {MODES}")
    neurons = _named_neurons(model)
    for pattern, mode in modes.items():
        hit = False
        for names, lif in neurons:
            if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                lif.mode = mode
                hit = True
        if not hit:
            raise ValueError(f"mode pattern {pattern!r} matches no spiking layer or neuron in the model")
    return get_modes(model)


def set_stateful(model: nn.Module, on: bool = True) -> int:
    """Make every :class:`LIF` in ``model`` carry its membrane across calls (``on``) or not,
    starting from rest either way; returns the number of neurons."""
    neurons = [m for m in model.modules() if isinstance(m, LIF)]
    for lif in neurons:
        lif.stateful = bool(on)
        lif.reset_state()
    return len(neurons)


@contextlib.contextmanager
def spike_rates(model: nn.Module) -> Iterator[list[Tensor]]:
    """A list that receives, for every forward inside the block, each spiking :class:`LIF`'s mean
    output (its firing rate, differentiable through the surrogate gradient); analog and read-out
    neurons are left out."""
    rates: list[Tensor] = []

    def record(module: nn.Module, args: tuple, out: Tensor) -> None:
        if module.mode == "spiking":
            rates.append(out.mean())

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, LIF)]
    try:
        yield rates
    finally:
        for h in handles:
            h.remove()


def reset_states(model: nn.Module) -> None:
    """Forget every carried membrane in ``model`` (a seek, a gap, a new recording)."""
    for m in model.modules():
        if isinstance(m, LIF):
            m.reset_state()


def get_modes(model: nn.Module) -> dict[str, str]:
    """``{neuron module name: mode}`` for every :class:`LIF` in ``model``."""
    return {n: m.mode for n, m in model.named_modules() if isinstance(m, LIF)}


def _named_neurons(model: nn.Module) -> list[tuple[tuple[str, ...], LIF]]:
    # a neuron answers to its own name and to its SpikingLayer's name
    owner = {id(m.neuron): n for n, m in model.named_modules() if isinstance(m, SpikingLayer)}
    return [((n, owner[id(m)]) if id(m) in owner else (n,), m)
            for n, m in model.named_modules() if isinstance(m, LIF)]


def _fold_pair(conv: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn``'s running statistics and affine parameters into ``conv``'s weight and bias."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight = nn.Parameter((conv.weight * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))).detach())
    conv.bias = nn.Parameter(((bias - bn.running_mean) * scale + shift).detach())


def folded_for_inference(model: nn.Module) -> nn.Module:
    """An evaluation-mode copy of ``model`` in which every BatchNorm that directly follows a
    convolution in a ``Sequential`` (the synapse of :class:`SpikingConv`) is folded into that
    convolution's weight and bias: the same outputs (to float rounding) without a normalisation
    pass per layer (apps.bench times both at 260x346: 1.11x faster for the hand-picked fast
    network, 0.99-1.03x for the searched one that replaced it). The module names of the
    convolutions are kept, so the energy meter counts the copy exactly as the original. ``model``
    itself is not changed (it may go on training); a model with nothing to fold (SGBM) is
    returned as it is, in evaluation mode."""
    if not _foldable_pairs(model):
        return model.eval()
    copy_ = copy.deepcopy(model).eval()
    for seq, conv_name, bn_name in _foldable_pairs(copy_):
        _fold_pair(seq._modules[conv_name], seq._modules[bn_name])
        del seq._modules[bn_name]
    return copy_


def _foldable_pairs(model: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """(sequential, conv name, BN name) for each BatchNorm with running statistics right after a
    convolution, last first in each Sequential (so deleting one keeps the others' names)."""
    pairs = []
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for i in range(len(names) - 1, 0, -1):
            conv, bn = seq._modules[names[i - 1]], seq._modules[names[i]]
            if (isinstance(conv, nn.modules.conv._ConvNd) and not isinstance(conv, nn.modules.conv._ConvTransposeNd)
                    and isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.track_running_stats
                    and bn.running_mean is not None and bn.num_features == conv.out_channels):
                pairs.append((seq, names[i - 1], names[i]))
    return pairs
