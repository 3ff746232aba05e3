"""Multi-step leaky integrate-and-fire neurons (:class:`LIF`), hybrid by mode.

The dynamics and the kernels that run them (compiled or eager) are
:mod:`evstereo.snn.lif_kernels`; the learnable per-type decays a neuron may read are
:mod:`evstereo.snn.time_constants`. A :class:`LIF` holds its threshold, reset, surrogate and
surrogate temperature ``b`` (a buffer that DGS changes), and either a fixed decay or a
reference to the model's :class:`~evstereo.snn.time_constants.TimeConstants` registry.
A ``stateful`` neuron carries its membrane from one call to the next (streaming: each call is
the next window of the same stream); :meth:`LIF.reset_state` forgets it, and a call whose
batch or size differs from the last one starts from rest.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from evstereo.snn.lif_kernels import RESETS, lif_multistep, membrane_readout
from evstereo.snn.surrogate import SURROGATES
from evstereo.snn.time_constants import TimeConstants

__all__ = ["LIF", "MODES"]

MODES = ("spiking", "analog", "readout")


class LIF(nn.Module):
    """Multi-step LIF neuron layer over ``[B, T, C, ...]`` currents; hybrid by ``mode``.

    Modes (switchable at any time, e.g. with :func:`evstereo.snn.layers.set_modes`):

    - ``"spiking"``: LIF spikes (see :mod:`evstereo.snn.lif_kernels`);
    - ``"analog"``: ``ReLU(I)`` per step, the ANN part of a hybrid network (the BN is the
      synapse's, so a conv + BN synapse gives conv + BN + ReLU);
    - ``"readout"``: the non-firing membrane ``u[t] = decay * u[t-1] + I[t]``.

    The decay is ``decay`` (a fixed float; 1.0 makes an IF neuron) unless ``time_constants``
    and ``neuron_type`` are given, in which case it is the registry's learnable decay of that
    type. The registry is referenced, not owned: the model must hold it as a submodule (so it
    is saved once and moves with ``.to()``). The surrogate temperature ``b`` is a buffer (DGS
    changes it; it is saved with the model).
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        decay: float = 0.2,
        reset: str = "hard",
        surrogate: str = "dspike",
        b: float = 3.0,
        time_constants: TimeConstants | None = None,
        neuron_type: str | None = None,
        mode: str = "spiking",
        detach_reset: bool = False,
    ) -> None:
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"unknown reset {reset!r}; choose one of {RESETS}")
        if surrogate not in SURROGATES:
            raise ValueError(f"unknown surrogate {surrogate!r}; choose one of {SURROGATES}")
        if (time_constants is None) != (neuron_type is None):
            raise ValueError("give both time_constants and neuron_type, or neither")
        self.threshold = float(threshold)
        self.fixed_decay = float(decay)
        self.reset = reset
        self.surrogate = surrogate
        self.detach_reset = detach_reset
        self.neuron_type = neuron_type
        self.mode = mode
        # plain attribute, not a submodule: the registry belongs to the model, once
        object.__setattr__(self, "_time_constants", time_constants)
        if time_constants is not None and neuron_type not in time_constants.w:
            time_constants.add(neuron_type)
        self.register_buffer("b", torch.tensor(float(b)))
        self.stateful = False
        self._state: Tensor | None = None  # post-reset membrane after the last call (stateful only)

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"unknown neuron mode {value!r}; choose one of {MODES}")
        self._mode = value

    @property
    def time_constants(self) -> TimeConstants | None:
        return self._time_constants

    def decay(self) -> Tensor | float:
        """The decay in use: the registry's (differentiable) tensor or the fixed float."""
        if self._time_constants is not None:
            return self._time_constants.decay(self.neuron_type)
        return self.fixed_decay

    def forward(self, current: Tensor, b: Tensor | float | None = None) -> Tensor:
        """Spikes (or ReLU / membrane, by mode) for ``current`` ``[B, T, C, ...]``; ``b`` overrides
        the surrogate temperature for this call (DGS candidates use it)."""
        if self._mode == "analog":
            return torch.relu(current)
        if not self.stateful:
            if self._mode == "readout":
                return membrane_readout(current, self.decay())
            return lif_multistep(current, self.decay(), self.threshold, reset=self.reset, surrogate=self.surrogate,
                                 b=self.b if b is None else b, detach_reset=self.detach_reset)
        state = self._state
        if state is None or state.shape != current[:, 0].shape or state.device != current.device:
            state = None  # a new stream, or another size (a new input scale): start from rest
        if self._mode == "readout":
            out, self._state = membrane_readout(current, self.decay(), initial=state, return_state=True)
        else:
            out, self._state = lif_multistep(current, self.decay(), self.threshold, reset=self.reset,
                                             surrogate=self.surrogate, b=self.b if b is None else b,
                                             detach_reset=self.detach_reset, initial=state, return_state=True)
        return out

    def reset_state(self) -> None:
        """Forget the carried membrane: the next call starts from rest."""
        self._state = None

    def extra_repr(self) -> str:
        d = f"type={self.neuron_type}" if self.neuron_type else f"decay={self.fixed_decay}"
        return (f"mode={self._mode}, {d}, threshold={self.threshold}, reset={self.reset}, "
                f"surrogate={self.surrogate}, b={float(self.b):.2f}")
