"""Recording files -> :class:`Recording`: the readers, the MVSEC-layout writer and the converters.

``recording``     the Recording interface and ``open_recording(path)``, which picks the reader
                  from what the path holds (an MVSEC-layout ``.hdf5`` or a DSEC sequence folder)
``mvsec``         MVSEC (official, synthetic and converted files share the layout)
``dsec``          DSEC stereo sequences
``mvsec_writer``  writes the exact MVSEC layout, atomically (the simulator and the converters)
``convert``       other formats (text, npz, aedat4, DSEC) -> MVSEC layout, one module per format

Layering: this package knows files and events only; it never imports ``evstereo.datasets``
(training samples) or ``evstereo.models``.
"""

from __future__ import annotations

from evstereo.recordings.recording import Recording, open_recording

__all__ = ["Recording", "open_recording"]
