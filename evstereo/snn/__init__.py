"""Spiking core: multi-step LIF neurons with learnable per-type time constants, surrogate
gradients and their search (DGS), hybrid spiking/analog layers, and energy accounting.

Pure torch (no Lightning, no datasets); the DGS Lightning callback is
``evstereo.training.dgs.DGSCallback``.
"""

from evstereo.snn.energy import EnergyMeter, format_energy_table, is_spike_tensor
from evstereo.snn.layers import (SpikingConv, SpikingLayer, SpikingLinear, get_modes, reset_states, set_modes,
                                 set_stateful, spike_rates)
from evstereo.snn.lif_kernels import get_backend, lif_multistep, membrane_readout, set_backend
from evstereo.snn.neuron import LIF
from evstereo.snn.surrogate import (
    SURROGATES,
    DGSConfig,
    atan_spike,
    dgs_layers,
    dspike,
    run_dgs_phase,
    sigmoid_spike,
    spike,
    surrogate_grad,
    surrogate_temperatures,
)
from evstereo.snn.time_constants import TimeConstants, learned_time_constants

__all__ = [
    "EnergyMeter", "format_energy_table", "is_spike_tensor",
    "SpikingConv", "SpikingLayer", "SpikingLinear", "get_modes", "reset_states", "set_modes", "set_stateful",
    "spike_rates",
    "LIF", "TimeConstants", "get_backend", "learned_time_constants", "lif_multistep", "membrane_readout",
    "set_backend",
    "SURROGATES", "DGSConfig", "atan_spike", "dgs_layers", "dspike", "run_dgs_phase", "sigmoid_spike", "spike",
    "surrogate_grad", "surrogate_temperatures",
]
