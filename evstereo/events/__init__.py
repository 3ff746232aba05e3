"""Event arrays, the millisecond time index, rectification and representations (numba).

Public API: ``voxel_grid``, ``sbt``, ``event_counts``, ``spike_tensor`` (see
``representations``), ``Events``, ``TimeIndex``, ``rectify_events`` and ``InputSpec`` (the
input description a network owns, see ``input_spec``).
"""

from evstereo.events.arrays import Events
from evstereo.events.input_spec import InputSpec
from evstereo.events.rectify import rectify_events
from evstereo.events.representations import event_counts, sbt, spike_tensor, voxel_grid
from evstereo.events.time_index import TimeIndex

__all__ = [
    "Events",
    "InputSpec",
    "TimeIndex",
    "rectify_events",
    "voxel_grid",
    "sbt",
    "event_counts",
    "spike_tensor",
]
