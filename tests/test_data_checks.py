"""Input that used to give silently wrong results, the time index, storage and the data tools' options.

Misread clocks, timestamps that overflow or lie far out, mono recordings, broken calibrations,
a stale time-index cache, 1-based pixels, which camera is left; compressed storage in MVSEC's
exact layout; one command line (-q, --json, help text) for every data tool.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import DAVIS_AEDAT4, REAL_CALIB
from evstereo.datasets.prepared import cache_path, prepare_recording
from evstereo.datasets.samples import SampleSpec
from evstereo.errors import InputError
from evstereo.events.arrays import seconds_to_us
from evstereo.events.time_index import TimeIndex
from evstereo.geometry import load_camchain
from evstereo.recordings import open_recording
from evstereo.recordings.convert import ConvertWarning, convert
from evstereo.recordings.mvsec import MVSECRecording
from evstereo.recordings.mvsec_writer import MVSECWriter

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _run(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", *[str(a) for a in args]], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _write_text(path: Path, rows) -> Path:
    path.write_text("\n".join(" ".join(str(v) for v in r) for r in rows) + "\n")
    return path


def _stereo_text(path: Path, n=2000, t0=0, span=2_000_000, seed=0, one_based=False, cams=(0, 1)) -> Path:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(t0, t0 + span, n))
    off = 1 if one_based else 0
    rows = zip(t, rng.integers(0, 346, n) + off, rng.integers(0, 260, n) + off, rng.integers(0, 2, n),
               rng.choice(cams, n))
    return _write_text(path, rows)


# --- clocks -------------------------------------------------------------------------------
def test_microseconds_read_as_seconds_warn_and_name_time_unit(tmp_path):
    src = _stereo_text(tmp_path / "us.txt", t0=1_000_000)  # 2 s of events, in microseconds
    with pytest.warns(ConvertWarning, match=r"23\.1 days.*--time-unit"):
        s = convert([src], "text", tmp_path / "a.hdf5")
    assert any("--time-unit" in w for w in s["warnings"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvertWarning)
        s = convert([src], "text", tmp_path / "b.hdf5", time_unit="us")  # right unit: no warning
    assert s["warnings"] == [] and s["duration_s"] == pytest.approx(2.0, abs=0.01)
    r = _run("data_tools.convert", src, "--format", "text", "--out", tmp_path / "c.hdf5")
    assert r.returncode == 0, r.stderr
    warns = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warns) == 1 and "--time-unit" in warns[0] and str(src) in warns[0]
    r = _run("data_tools.inspect", tmp_path / "a.hdf5")  # the misread file still says so later
    assert r.returncode == 0 and "warning: " in r.stderr and "days" in r.stderr


def test_impossible_event_rate_warns(tmp_path):
    src = _stereo_text(tmp_path / "ms.txt", n=5000, span=2)  # 5000 events within 2 us (ms read as us)
    with pytest.warns(ConvertWarning, match="events/s.*--time-unit"):
        convert([src], "text", tmp_path / "a.hdf5", time_unit="us")


def test_timestamps_that_overflow_int64_microseconds(tmp_path):
    src = _write_text(tmp_path / "big.txt", [(1, 1, 1, 1), (2, 2, 2, 0), (2e13, 3, 3, 1)])
    with pytest.raises(InputError, match=r"big\.txt: line 3 .*beyond int64 microseconds.*--time-unit"):
        convert([src], "text", tmp_path / "o.hdf5")
    src = _write_text(tmp_path / "huge.txt", [(1, 1, 1, 1), (99999999999999999999, 2, 2, 0)])
    with pytest.raises(InputError, match=r"huge\.txt: line 2 .*beyond int64"):
        convert([src], "text", tmp_path / "o.hdf5", time_unit="us")
    assert not (tmp_path / "o.hdf5").exists()
    # an MVSEC-layout file written by someone else
    bad = tmp_path / "far_data.hdf5"
    with MVSECWriter(bad) as w:
        w.add_events("left", [1, 2], [1, 2], [1.5e9, 1e14], [1, -1])
        w.add_events("right", [1], [1], [1.5e9], [1])
    with pytest.raises(InputError, match=r"far_data\.hdf5: 'davis/left/events' event 1 has t = 1e\+14 s"):
        MVSECRecording(bad)
    r = _run("data_tools.inspect", bad)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "far_data.hdf5" in r.stderr


def test_one_far_outlying_event_costs_one_index_entry(tmp_path):
    """A single event 31 years late: the old dense index wanted 10**12 ms entries (8 TB)."""
    rng = np.random.default_rng(0)
    n = 200_000
    t = 1.5e9 + np.sort(rng.uniform(0, 1.0, n))
    t[-1] = 1.5e9 + 1e9
    path = tmp_path / "late_data.hdf5"
    with MVSECWriter(path) as w:
        for cam in ("left", "right"):
            w.add_events(cam, rng.integers(0, 346, n), rng.integers(0, 260, n), t, rng.choice([-1, 1], n))
    start = time.monotonic()
    with MVSECRecording(path) as rec:
        assert time.monotonic() - start < 30
        idx = rec._index["left"]
        assert len(idx.keys) <= 1002 and idx.t_last_us - idx.t_first_us > 0.99e15
        t_us = seconds_to_us(t)
        for a, b in [(100_000, 150_000), (999_000, 1_000_000 + 10**15)]:
            t0, t1 = t_us[0] + a, t_us[0] + b
            ev = rec.raw_events("left", t0, t1)
            np.testing.assert_array_equal(ev.t, t_us[(t_us > t0) & (t_us <= t1)])
        assert any("outlying" in w for w in rec.warnings())


def test_sparse_time_index_equals_a_dense_one():
    rng = np.random.default_rng(3)
    t = np.sort(np.concatenate([rng.integers(0, 50_000, 3000), rng.integers(10**9, 10**9 + 20_000, 500)]))
    idx = TimeIndex.build([t[i : i + 333] for i in range(0, len(t), 333)], len(t))
    assert len(idx.keys) <= 50 + 21 + 2
    for t0 in list(rng.integers(-5_000, 10**9 + 30_000, 300)) + [0, 999, 1000, 10**9 - 1]:
        for width in (1, 1000, 50_000, 10**9):
            lo, hi = idx.coarse_slice(int(t0), int(t0) + width)
            sel = np.flatnonzero((t > t0) & (t <= t0 + width))
            if len(sel):
                assert lo <= sel[0] and hi > sel[-1]
                assert hi - lo <= len(sel) + np.sum((t > t0 - 1000) & (t <= t0)) + np.sum((t > t0 + width) & (t <= t0 + width + 1000))
    back = TimeIndex.from_arrays(idx.to_arrays())
    assert back.coarse_slice(10_000, 20_000) == idx.coarse_slice(10_000, 20_000)
    with pytest.raises(OverflowError):
        TimeIndex.build([np.array([0, 2**62 + 1], np.int64)], 2)


# --- cameras ---------------------------------------------------------------------------------
def test_mono_input_warns_and_stereo_check_refuses(tmp_path):
    src = _stereo_text(tmp_path / "all0.txt", cams=(0,))
    with pytest.warns(ConvertWarning, match="right camera has no events.*camera column names the left camera"):
        convert([src], "text", tmp_path / "mono.hdf5", time_unit="us")
    with open_recording(tmp_path / "mono.hdf5") as rec:
        assert rec.empty_cameras() == ["right"]
        with pytest.raises(InputError, match=r"mono\.hdf5: has no events for the right camera"):
            rec.check_stereo()
    r = _run("data_tools.inspect", tmp_path / "mono.hdf5")
    assert r.returncode == 0 and "warning: " in r.stderr and "right camera has no events" in r.stderr
    assert "left   events        2,000" in r.stdout and "right  events            0" in r.stdout


@pytest.mark.skipif(not DAVIS_AEDAT4.is_file(), reason="shared real data not found")
def test_mono_aedat4_warns(tmp_path):
    r = _run("data_tools.convert", DAVIS_AEDAT4, "--format", "aedat4", "--out", tmp_path / "a.hdf5")
    assert r.returncode == 0, r.stderr
    warns = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: ")]
    assert len(warns) == 1 and "right camera has no events" in warns[0] and "AEDAT4" in warns[0]


def test_left_camera_option(tmp_path):
    src = _write_text(tmp_path / "ids.txt", [(1, 5, 5, 1, 1), (2, 6, 6, 0, 0), (3, 7, 7, 1, "right"), (4, 8, 8, 1, 1)])
    s = convert([src], "text", tmp_path / "a.hdf5", time_unit="us", sensor=(10, 10), left_camera=1)
    assert s["cameras"]["left"]["events"] == 2 and s["cameras"]["right"]["events"] == 2
    with h5py.File(tmp_path / "a.hdf5", "r") as f:
        np.testing.assert_array_equal(f["davis/left/events"][:, 0], [5, 8])  # id 1 is left
        np.testing.assert_array_equal(f["davis/right/events"][:, 0], [6, 7])  # the word 'right' stays right
    r = _run("data_tools.convert", src, "--format", "text", "--left-camera", "1", "--time-unit", "us",
             "--sensor", 10, 10, "--out", tmp_path / "b.hdf5", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["cameras"]["left"]["events"] == 2
    r = _run("data_tools.convert", src, "--format", "text", "--left-camera", "2", "--out", tmp_path / "c.hdf5")
    assert r.returncode == 2 and "--left-camera" in r.stderr


def test_one_based_file_suggests_one_based_not_offsets(tmp_path):
    src = _stereo_text(tmp_path / "one.txt", n=3000, one_based=True, seed=5)
    with pytest.raises(InputError, match=r"one\.txt: .*probably 1-based: pass --one-based") as exc:
        convert([src], "text", tmp_path / "o.hdf5", time_unit="us", sensor=(346, 260))
    assert "--left-offset" not in str(exc.value) and "--right-offset" not in str(exc.value)
    s = convert([src], "text", tmp_path / "o.hdf5", time_unit="us", sensor=(346, 260), one_based=True)
    assert s["cameras"]["left"]["events"] + s["cameras"]["right"]["events"] == 3000
    with pytest.warns(ConvertWarning, match="--one-based.*346x260, not 640x480"):  # without --sensor
        convert([src], "text", tmp_path / "p.hdf5", time_unit="us")


# --- calibration ---------------------------------------------------------------------------
@pytest.mark.parametrize("edit,match", [
    (lambda d: d["cam0"]["intrinsics"].__setitem__(0, float("nan")), "cam0 intrinsics holds NaN"),
    (lambda d: d["cam1"]["intrinsics"].__setitem__(1, 0.0), "cam1 focal length"),
    (lambda d: d["cam0"]["projection_matrix"][0].__setitem__(0, 0.0), "cam0 rectified focal length"),
    (lambda d: d["cam1"]["projection_matrix"][0].__setitem__(3, 0.0), "zero baseline"),
    (lambda d: d["cam1"]["projection_matrix"][0].__setitem__(3, float("nan")), "cam1 projection_matrix holds NaN"),
    (lambda d: d["cam1"]["projection_matrix"][0].__setitem__(3, 5.0), "swapped"),
    (lambda d: d["cam1"].__setitem__("T_cn_cnm1", [[float("nan")] * 4] * 4), "T_cn_cnm1 holds NaN"),
])
def test_broken_calibration_is_an_input_error_naming_the_file(tmp_path, edit, match):
    doc = yaml.safe_load(REAL_CALIB.read_text())
    edit(doc)
    path = tmp_path / "camchain-imucam-bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=match) as exc:
        load_camchain(path)
    assert exc.value.path == str(path)


def test_recording_with_broken_calibration(tmp_path, random_recording):
    data = tmp_path / "rand_data.hdf5"
    shutil.copy(random_recording, data)
    (tmp_path / "rand_calib").mkdir()
    doc = yaml.safe_load(REAL_CALIB.read_text())
    doc["cam1"]["projection_matrix"][0][3] = 0.0
    bad = tmp_path / "rand_calib" / "camchain-imucam-rand.yaml"
    bad.write_text(yaml.safe_dump(doc))
    r = _run("data_tools.inspect", data)
    assert r.returncode == 2 and str(bad) in r.stderr and "zero baseline" in r.stderr and "Traceback" not in r.stderr


# --- the time-index cache ---------------------------------------------------------------------
def test_index_cache_keyed_on_content_not_only_size_and_mtime(tmp_path, random_recording):
    data = tmp_path / "rand_data.hdf5"
    shutil.copy(random_recording, data)
    shutil.copytree(random_recording.parent / "rand_calib", tmp_path / "rand_calib")
    MVSECRecording(data).close()
    st = data.stat()
    with h5py.File(data, "r+") as f:  # same shape and size: every event 0.2 s later
        ds = f["davis/left/events"]
        ev = ds[:]
        ev[:, 2] += 0.2
        ds[:] = ev
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert data.stat().st_size == st.st_size and data.stat().st_mtime_ns == st.st_mtime_ns
    with MVSECRecording(data) as rec:
        t = seconds_to_us(ev[:, 2])
        assert rec.time_range("left") == (t[0], t[-1])
        t0 = int(t[0]) + 300_000
        np.testing.assert_array_equal(rec.raw_events("left", t0, t0 + 50_000).t, t[(t > t0) & (t <= t0 + 50_000)])


# --- prepare -------------------------------------------------------------------------------
def test_truncated_prepare_output_is_rebuilt(tmp_path, random_recording):
    spec = SampleSpec()
    out = tmp_path / "cache.h5"
    prepare_recording(random_recording, out, spec, progress=False)
    with h5py.File(out, "r") as f:
        reference = f["left"][:]
    data = out.read_bytes()
    out.write_bytes(data[: len(data) * 2 // 3])  # a copy cut short
    with pytest.warns(UserWarning, match=r"cache\.h5: the training cache is damaged"):
        prepare_recording(random_recording, out, spec, progress=False)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["left"][:], reference)
    # the CLI: a one-line warning, then the rebuilt cache
    (tmp_path / "cli").mkdir()
    cli_cache = cache_path(tmp_path / "cli", random_recording, spec)  # the name data_tools.prepare writes
    shutil.copy(out, cli_cache)
    r = _run("data_tools.prepare", random_recording, "--out", tmp_path / "cli", "-q")
    assert r.returncode == 0 and r.stderr == ""  # a sound cache is reused silently
    cut = cli_cache
    cut.write_bytes(cut.read_bytes()[:4096])
    r = _run("data_tools.prepare", random_recording, "--out", tmp_path / "cli", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("warning: ") and "damaged" in r.stderr and r.stderr.count("\n") == 1
    with h5py.File(cut, "r") as f:
        np.testing.assert_array_equal(f["left"][:], reference)


def test_damaged_partial_cache_starts_over(tmp_path, random_recording):
    out = tmp_path / "cache.h5"
    partial = tmp_path / ".cache.h5.partial"
    partial.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # cut right after the signature
    prepare_recording(random_recording, out, SampleSpec(), progress=False)
    assert out.is_file() and not partial.exists()


# --- storage ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_pair(tmp_path_factory):
    from evstereo.simulation import synthesize

    folder = tmp_path_factory.mktemp("layouts")
    plain = synthesize(folder / "plain", "r", 0.25, seed=2)
    packed = synthesize(folder / "packed", "r", 0.25, seed=2, compress_events=True)
    return plain, packed


def test_compressed_storage_keeps_the_mvsec_layout(synth_pair):
    plain, packed = synth_pair
    with h5py.File(plain["data"], "r") as a, h5py.File(packed["data"], "r") as b:
        for f in (a, b):
            for cam in ("left", "right"):
                g = f[f"davis/{cam}"]
                assert g["events"].dtype == np.float64 and g["events"].shape[1] == 4
                assert g["image_raw"].dtype == np.uint8 and g["image_raw"].shape[1:] == (260, 346)
                assert g["image_raw"].compression == "gzip"
        assert a["davis/left/events"].compression is None and not a["davis/left/events"]._filters
        assert "32001" in b["davis/left/events"]._filters  # Blosc (hdf5plugin)
        for cam in ("left", "right"):
            np.testing.assert_array_equal(a[f"davis/{cam}/events"][:], b[f"davis/{cam}/events"][:])
            np.testing.assert_array_equal(a[f"davis/{cam}/image_raw"][:], b[f"davis/{cam}/image_raw"][:])
    with h5py.File(plain["gt"], "r") as g:
        d = g["davis/left/depth_image_rect"]
        assert d.compression == "gzip" and d.dtype == np.float32 and d.shape[1:] == (260, 346)
        assert d.id.get_storage_size() < 0.7 * d.size * 4
    assert packed["bytes"] < 0.5 * plain["bytes"]
    with open_recording(plain["data"]) as ra, open_recording(packed["data"]) as rb:
        t0 = ra.time_range("left")[0]
        for a, b in [(0, 50_000), (100_000, 150_000), (0, 10**6)]:
            ea, eb = ra.events("left", t0 + a, t0 + b), rb.events("left", t0 + a, t0 + b)
            assert len(ea) > 0
            for k in "xytp":
                np.testing.assert_array_equal(getattr(ea, k), getattr(eb, k))
        np.testing.assert_array_equal(ra.depth(2), rb.depth(2))


def test_depth_is_stored_to_16_significant_bits(synth_pair):
    from evstereo.simulation.recorder import round_significant

    with h5py.File(synth_pair[0]["gt"], "r") as g:
        d = g["davis/left/depth_image_rect"][:]
    np.testing.assert_array_equal(round_significant(d, 16), d)
    x = np.random.default_rng(0).uniform(0.3, 10, 10_000).astype(np.float32)
    assert np.max(np.abs(round_significant(x, 16) - x) / x) <= 2.0**-16
    assert np.isnan(round_significant(np.array([np.nan], np.float32), 16)[0])


def test_reading_bench_pieces(tmp_path, synth_pair):
    from benchmarks import reading

    plain = Path(synth_pair[0]["data"])
    copy = reading._copy_events(plain, tmp_path / "z_data.hdf5", compress_events=True)
    calib = Path(synth_pair[0]["calibration"]).parent
    recs = [MVSECRecording(plain, calibration=calib), MVSECRecording(copy, calibration=calib)]
    (a, b), counts = reading._alternate(recs, np.array([0.06, 0.1, 0.15]))
    assert a > 0 and b > 0 and min(counts) > 1000
    assert reading._events_mb(copy) < reading._events_mb(plain) / 2
    for r in recs:
        r.close()


# --- one command line ---------------------------------------------------------------------------
TOOLS = ["synth", "convert", "inspect", "prepare"]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_option_has_help_and_quiet_exists(tool):
    r = _run(f"data_tools.{tool}", "--help")
    assert r.returncode == 0
    text = r.stdout
    assert "-q, --quiet" in text or "--quiet, -q" in text
    assert "--json" in text
    options = text[text.index("options:"):]
    import re

    for m in re.finditer(r"^  (-[^\n]*?)(?:\n|$)", options, re.M):
        line = m.group(1)
        if "  " in line.strip():
            continue  # option and help on one line
        nxt = options[m.end():].split("\n", 1)[0]
        assert nxt.startswith(" " * 10) and nxt.strip(), f"{tool}: option without help: {line!r}"


def test_json_goes_to_stdout(tmp_path, random_recording):
    r = _run("data_tools.inspect", random_recording, "--json", "-q")
    assert r.returncode == 0 and json.loads(r.stdout)["cameras"]["left"]["events"] > 0
    src = _stereo_text(tmp_path / "e.txt")
    r = _run("data_tools.convert", src, "--format", "text", "--time-unit", "us", "--out", tmp_path / "e.hdf5", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["out"] == str(tmp_path / "e.hdf5")
    r = _run("data_tools.synth", "--out", tmp_path / "s", "--name", "j", "--seconds", 0.06, "--seed", 1, "--json")
    assert r.returncode == 0 and Path(json.loads(r.stdout)["data"]).is_file()
    r = _run("data_tools.prepare", random_recording, "--out", tmp_path / "p", "--json")
    assert r.returncode == 0 and Path(json.loads(r.stdout)["caches"][0]).is_file()
    r = _run("data_tools.synth", "--out", tmp_path / "s", "--name", "q", "--seconds", 0.06, "--seed", 1, "-q")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_inspect_shows_events_per_pixel_and_says_when_windows_get_longer(tmp_path, random_recording):
    from random_recording import write_random_mvsec

    r = _run("data_tools.inspect", random_recording, "--json", "-q")
    cams = json.loads(r.stdout)["cameras"]  # 200 k events/s on 346x260 pixels: 0.111 per pixel in 50 ms
    assert all(c["events_per_pixel_per_window"] == pytest.approx(200_000 * 0.05 / (346 * 260), rel=0.01)
               for c in cams.values())
    r = _run("data_tools.inspect", random_recording)
    assert r.returncode == 0 and "0.111 per pixel in 50 ms" in r.stdout and "windows       sparse" not in r.stdout
    sparse = write_random_mvsec(tmp_path, "sparse", 0.5, 20_000, calibration=REAL_CALIB)
    r = _run("data_tools.inspect", sparse)
    assert r.returncode == 0 and "0.0111 per pixel in 50 ms" in r.stdout
    assert "windows       sparse (under 0.1 events per pixel in 50 ms)" in r.stdout and "8x further back" in r.stdout


def test_inspect_shows_a_swapped_pair(tmp_path, synth_pair):
    """Rectified events of a synthetic pair written as text with the camera ids swapped."""
    rows = []
    with open_recording(synth_pair[0]["data"]) as rec:
        for cam_id, cam in ((1, "left"), (0, "right")):  # swapped: left events labelled 1
            a, b = rec.time_range(cam)
            ev = rec.events(cam, a - 1, b)
            rows.append(np.stack([ev.t, ev.x, ev.y, (ev.p > 0).astype(int), np.full(len(ev), cam_id)], 1))
    rows = np.concatenate(rows)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    src = tmp_path / "swapped.txt"
    np.savetxt(src, rows, fmt="%d")
    convert([src], "text", tmp_path / "swapped.hdf5", time_unit="us", sensor=(346, 260))
    r = _run("data_tools.inspect", tmp_path / "swapped.hdf5")
    assert r.returncode == 0 and "SWAPPED" in r.stdout
    assert "warning: " in r.stderr and "look swapped" in r.stderr and "--left-camera 1" in r.stderr
    convert([src], "text", tmp_path / "fixed.hdf5", time_unit="us", sensor=(346, 260), left_camera=1)
    with open_recording(tmp_path / "fixed.hdf5") as rec:
        sh = rec.stereo_shift()
        assert sh["clear"] and sh["shift_px"] > 0 and not rec.warnings()
