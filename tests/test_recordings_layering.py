"""Layering (DESIGN.md): ``evstereo.recordings`` never imports training samples or models."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

_CHECK = """
import sys
import evstereo.recordings, evstereo.recordings.mvsec, evstereo.recordings.dsec, evstereo.recordings.mvsec_writer
import evstereo.recordings.convert
bad = sorted(m for m in sys.modules if m.split(".")[:2] in (["evstereo", "datasets"], ["evstereo", "models"])
             or m.split(".")[0] in ("torch", "lightning"))
print(" ".join(bad))
"""


def test_recordings_import_no_datasets_models_or_torch():
    r = subprocess.run([sys.executable, "-c", _CHECK], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"evstereo.recordings pulled in: {r.stdout.strip()}"


def test_open_recording_is_the_recordings_one():
    from evstereo.recordings import Recording, open_recording
    from evstereo.recordings.recording import Recording as R, open_recording as o

    assert (Recording, open_recording) == (R, o)
