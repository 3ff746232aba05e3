"""Streaming inference: replay a recording through a stereo model with a replay clock.

``engine`` (the streaming engine), ``prediction`` (input scale, disparity and confidence at the
sensor's size: ``Predictor``), ``readout`` (the fused CPU read-out), ``evaluation`` (the
metrics over a recording's GT frames).
"""

from evstereo.inference.engine import DepthFrame, EngineConfig, EngineStats, StreamingEngine
from evstereo.inference.prediction import DEFAULT_MIN_CONFIDENCE, Predictor

__all__ = ["DEFAULT_MIN_CONFIDENCE", "DepthFrame", "EngineConfig", "EngineStats", "Predictor", "StreamingEngine"]
