"""File formats -> Recording (MVSEC, DSEC, converted), torch Datasets, the DataModule, splits.

``open_recording(path)`` picks the reader from what the path holds.
"""

from __future__ import annotations

import os
from pathlib import Path

from evstereo.datasets.recording import Recording
from evstereo.errors import InputError

__all__ = ["Recording", "open_recording"]


def open_recording(path: str | os.PathLike, **kwargs) -> Recording:
    """Open any supported recording: an MVSEC-layout ``.hdf5`` (official, synthetic or
    converted) or a DSEC sequence folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    if path.is_dir():
        if (path / "events" / "left" / "events.h5").exists():
            from evstereo.datasets.dsec import DSECRecording

            return DSECRecording(path, **kwargs)
        data = sorted(path.glob("*_data.hdf5"))
        if len(data) == 1:
            path = data[0]
        else:
            raise InputError(path, "folder holds neither a DSEC sequence (events/left/events.h5) nor exactly one *_data.hdf5")
    if path.suffix in (".hdf5", ".h5"):
        from evstereo.datasets.mvsec import MVSECRecording

        return MVSECRecording(path, **kwargs)
    raise InputError(path, "unsupported recording (expected an MVSEC-layout .hdf5 or a DSEC sequence folder; "
                           "convert other formats with `python -m data_tools.convert`)")
