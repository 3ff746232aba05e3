"""apps.pareto: the front over error, energy and time, the picture, and bad results files."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT
from evstereo.viz.pareto_plot import Point, pareto_front


def test_front_keeps_only_undominated_points():
    a, b = Point("a", 1.0, 1.0, 50), Point("b", 2.0, 0.5, 50)
    c, d = Point("c", 2.0, 1.0, 60), Point("d", 1.0, 1.0, 50)  # c: worse than a everywhere; d ties a
    assert {p.name for p in pareto_front([a, b, c, d])} == {"a", "b", "d"}


def _results(path, err, mj, ms):
    path.write_text(json.dumps({"mean_disparity_error": err, "energy_mj": mj, "forward_ms_median": ms}))
    return path


def test_pareto_command_writes_the_picture_and_refuses_bad_files(tmp_path):
    a = _results(tmp_path / "a.json", 1.2, 0.6, 70)
    b = _results(tmp_path / "b.json", 1.5, 0.9, 90)
    out = tmp_path / "p.png"
    r = subprocess.run([sys.executable, "-m", "apps.pareto", f"fast={a}", f"other={b}", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "fast: 1.200 px, 0.600 mJ/frame, 70.0 ms/frame  (Pareto front)" in r.stdout
    assert "other: 1.500 px" in r.stdout and "other: 1.500 px, 0.900 mJ/frame, 90.0 ms/frame  (" not in r.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "bad.json").write_text(json.dumps({"mean_disparity_error": 1.0}))
    r = subprocess.run([sys.executable, "-m", "apps.pareto", f"x={tmp_path / 'bad.json'}", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "bad.json: has no energy_mj, forward_ms_median" in r.stderr
