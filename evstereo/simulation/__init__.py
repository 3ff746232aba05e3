"""Synthetic MVSEC-layout stereo event recordings with exact ground truth.

A random textured room, a smooth 6-DoF trajectory and a stereo rig (by default the real MVSEC
indoor_flying rig, fisheye distortion included; other sensor presets in
:mod:`evstereo.simulation.rigs`) give events, APS frames, IMU, poses and raw/rectified depth
for both cameras, with optional sensor and calibration realism and a randomised mode. Entry
point: :func:`synthesize` (command line: ``python -m data_tools.synth``).
"""

from evstereo.simulation.recorder import OptionError, SynthOptions, resolve_options, synthesize
from evstereo.simulation.rigs import DEFAULT_CALIBRATION, SENSORS

__all__ = ["DEFAULT_CALIBRATION", "OptionError", "SENSORS", "SynthOptions", "resolve_options", "synthesize"]
