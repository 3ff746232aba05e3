"""Synthetic MVSEC-layout stereo event recordings with exact ground truth.

A random textured room, a smooth 6-DoF trajectory and the real MVSEC indoor_flying stereo rig
(fisheye distortion included) give events, APS frames, IMU, poses and raw/rectified depth for
both cameras. Entry point: :func:`synthesize` (command line: ``python -m data_tools.synth``).
"""

from evstereo.simulation.recorder import DEFAULT_CALIBRATION, SynthOptions, synthesize

__all__ = ["DEFAULT_CALIBRATION", "SynthOptions", "synthesize"]
