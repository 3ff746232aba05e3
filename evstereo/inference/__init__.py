"""Streaming inference: replay a recording through a stereo model with a replay clock."""

from evstereo.inference.engine import DepthFrame, EngineConfig, EngineStats, StreamingEngine

__all__ = ["DepthFrame", "EngineConfig", "EngineStats", "StreamingEngine"]
