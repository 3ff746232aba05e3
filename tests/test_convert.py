"""evstereo.recordings.convert and `python -m data_tools.convert`: round trips and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from dsec_fixtures import write_dsec_sequence
from evstereo.errors import InputError
from evstereo.geometry import load_camchain
from evstereo.recordings.convert import convert
from evstereo.recordings.dsec import DSECRecording

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real")
NPZ = REAL / "pendulum_left_30cm_2.tsv.npz"
AEDAT = REAL / "davis346_sample_shiba24.aedat4"
needs_real = pytest.mark.skipif(not (NPZ.is_file() and AEDAT.is_file()), reason="shared real data not found")


def _events(path, camera):
    with h5py.File(path, "r") as f:
        return f[f"davis/{camera}/events"][:]


def _us(t_s):
    return np.round(t_s * 1e6).astype(np.int64)


def _leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def _random(rng, n, t0=0, w=346, h=260):
    t = np.sort(rng.integers(t0, t0 + 2_000_000, n))
    return t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n)


# --- text -----------------------------------------------------------------------------
def test_text_one_file_with_camera_column(tmp_path):
    rng = np.random.default_rng(1)
    cams = {c: _random(rng, 700 + 50 * i, t0=1_600_000_000_000_000) for i, c in enumerate(("left", "right"))}
    rows = [(t, x, y, p, c) for c, arrs in cams.items() for t, x, y, p in zip(*arrs)]
    rows.sort(key=lambda r: r[0])
    lines = ["# t x y p camera", ""]
    for k, (t, x, y, p, c) in enumerate(rows):
        cam = c if k % 3 == 0 else ("0" if c == "left" else "1")
        sep = "," if k % 2 else " "
        lines.append(sep.join(str(v) for v in (t, x + 1, y + 1, p, cam)) + ("  # note" if k == 5 else ""))
    src = tmp_path / "events.csv"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "rec.hdf5"
    s = convert([src], "text", out, time_unit="us", one_based=True, sensor=(346, 260), chunk=97)
    for c, (t, x, y, p) in cams.items():
        ev = _events(out, c)
        assert np.array_equal(_us(ev[:, 2]), t)
        assert np.array_equal(ev[:, 0], x) and np.array_equal(ev[:, 1], y)
        assert np.array_equal(ev[:, 3], np.where(p > 0, 1.0, -1.0))
        assert s["cameras"][c]["events"] == len(t)
    assert s["sensor"] == {"width": 346, "height": 260}
    with h5py.File(out, "r") as f:
        assert f.attrs["sensor_width"] == 346 and f.attrs["sensor_height"] == 260
    assert s["gt"] is None and s["calibration"] is None
    assert not (tmp_path / "rec_gt.hdf5").exists()


def test_text_two_files_seconds(tmp_path):
    rng = np.random.default_rng(2)
    data = {}
    for c in ("left", "right"):
        t, x, y, p = _random(rng, 500, w=128, h=128)
        t_s = t / 1e6
        (tmp_path / f"{c}.txt").write_text("".join(f"{a:.6f} {b} {d} {e}\n" for a, b, d, e in zip(t_s, x, y, p)))
        data[c] = (t, x, y, p)
    out = tmp_path / "two.hdf5"
    s = convert([tmp_path / "left.txt", tmp_path / "right.txt"], "text", out)  # seconds is the text default
    for c, (t, x, y, p) in data.items():
        ev = _events(out, c)
        assert np.array_equal(_us(ev[:, 2]), t) and np.array_equal(ev[:, 0], x) and np.array_equal(ev[:, 1], y)
        assert np.array_equal(ev[:, 3] > 0, p > 0)
    assert s["sensor"] == {"width": 128, "height": 128}  # inferred
    assert any("inferred" in n for n in s["notes"])
    assert s["duration_s"] == pytest.approx((max(data["left"][0][-1], data["right"][0][-1])
                                             - min(data["left"][0][0], data["right"][0][0])) / 1e6)


def test_text_without_camera_column_is_left_only(tmp_path):
    src = tmp_path / "mono.txt"
    src.write_text("1000 3 4 1\n2000 5 6 0\n2000 7 8 -1\n")
    s = convert([src], "text", tmp_path / "mono.hdf5", time_unit="ns", sensor=(10, 10))
    ev = _events(tmp_path / "mono.hdf5", "left")
    assert ev.shape == (3, 4) and np.allclose(ev[:, 2], [1e-6, 2e-6, 2e-6]) and list(ev[:, 3]) == [1, -1, -1]
    assert _events(tmp_path / "mono.hdf5", "right").shape == (0, 4)
    assert any("left camera" in n for n in s["notes"])


def test_text_garbage_line(tmp_path):
    src = tmp_path / "bad.txt"
    src.write_text("# header\n1 2 3 1 0\n2 3 4 0 1\n3 4 five 1 0\n4 5 6 1 1\n")
    with pytest.raises(InputError, match=r"line 4 .*five") as err:
        convert([src], "text", tmp_path / "o.hdf5", sensor=(10, 10))
    assert "bad.txt" in str(err.value)
    assert not (tmp_path / "o.hdf5").exists() and not _leftovers(tmp_path)


def test_text_wrong_column_count(tmp_path):
    src = tmp_path / "bad.txt"
    src.write_text("1 2 3 1 0\n2 3 4 0\n")
    with pytest.raises(InputError, match="line 2 .*4 columns, expected 5"):
        convert([src], "text", tmp_path / "o.hdf5")


def test_text_unsorted_and_sort_option(tmp_path):
    src = tmp_path / "unsorted.txt"
    lines = [f"{t} 1 1 1 {c}" for t, c in [(10, 0), (11, 1), (12, 0), (13, 1), (14, 0), (9, 1), (15, 0)]]
    src.write_text("# comment\n" + "\n".join(lines) + "\n")
    for chunk in (1000, 2):  # inside one chunk and across chunk boundaries
        with pytest.raises(InputError, match=r"not sorted: line 7 .*earlier than line 5 of the right camera") as err:
            convert([src], "text", tmp_path / "o.hdf5", time_unit="us", sensor=(4, 4), chunk=chunk)
        assert "unsorted.txt" in str(err.value) and "--sort" in str(err.value)
    s = convert([src], "text", tmp_path / "o.hdf5", time_unit="us", sensor=(4, 4), sort=True)
    assert list(_us(_events(tmp_path / "o.hdf5", "right")[:, 2])) == [9, 11, 13]
    assert s["cameras"]["left"]["events"] == 4


def test_text_out_of_sensor(tmp_path):
    src = tmp_path / "big.txt"
    src.write_text("1 12 3 1\n2 15 3 1\n")
    with pytest.raises(InputError, match=r"left camera.*x in 12..15.*10x10 sensor.*--left-offset -12 0"):
        convert([src], "text", tmp_path / "o.hdf5", sensor=(10, 10))
    src.write_text("1 2 3 1\n2 20 3 1\n")  # no shift can fit it: only the sensor size is suggested
    with pytest.raises(InputError, match=r"x in 2..20.*10x10 sensor.*--sensor WIDTH HEIGHT$"):
        convert([src], "text", tmp_path / "o.hdf5", sensor=(10, 10))


# --- npz ------------------------------------------------------------------------------
@needs_real
def test_real_npz_with_right_offset(tmp_path):
    out = tmp_path / "pendulum.hdf5"
    s = convert([NPZ], "npz", out, right_offset=(0, -4))
    raw = np.load(NPZ)
    for c, dy in (("left", 0), ("right", -4)):
        a = raw[c]
        ev = _events(out, c)
        assert ev.shape == (len(a), 4) and s["cameras"][c]["events"] == len(a)
        assert np.array_equal(_us(ev[:, 2]), a[:, 0])
        assert np.array_equal(ev[:, 0], a[:, 1]) and np.array_equal(ev[:, 1], a[:, 2] + dy)
        assert np.array_equal(ev[:, 3], np.where(a[:, 3] > 0, 1.0, -1.0))
        assert ev[:, 1].max() <= 127 and ev[:, 1].min() >= 0
    assert s["sensor"] == {"width": 128, "height": 128}
    assert s["duration_s"] == pytest.approx(13.687542, abs=1e-6)


@needs_real
def test_real_npz_without_offset_is_a_clear_error(tmp_path):
    with pytest.raises(InputError) as err:
        convert([NPZ], "npz", tmp_path / "p.hdf5")
    msg = str(err.value)
    assert NPZ.name in msg and "right camera" in msg and "4..131" in msg and "--right-offset 0 -4" in msg
    assert not (tmp_path / "p.hdf5").exists() and not _leftovers(tmp_path)


def test_npz_unsorted_and_bad_arrays(tmp_path):
    a = np.array([[5, 1, 1, 1], [3, 2, 2, 0], [7, 3, 3, 1]], np.int64)
    np.savez(tmp_path / "u.npz", left=a, right=a[:0])
    with pytest.raises(InputError, match=r"u\.npz.*left camera are not sorted: event 1"):
        convert([tmp_path / "u.npz"], "npz", tmp_path / "o.hdf5")
    convert([tmp_path / "u.npz"], "npz", tmp_path / "o.hdf5", sort=True)
    assert list(_us(_events(tmp_path / "o.hdf5", "left")[:, 2])) == [3, 5, 7]
    assert _events(tmp_path / "o.hdf5", "right").shape == (0, 4)
    np.savez(tmp_path / "k.npz", left=a)
    with pytest.raises(InputError, match=r"k\.npz.*no array 'right'"):
        convert([tmp_path / "k.npz"], "npz", tmp_path / "o.hdf5")
    np.savez(tmp_path / "s.npz", left=a[:, :3], right=a)
    with pytest.raises(InputError, match=r"s\.npz.*'left' has shape \(3, 3\)"):
        convert([tmp_path / "s.npz"], "npz", tmp_path / "o.hdf5")


@needs_real
def test_truncated_npz(tmp_path):
    bad = tmp_path / "cut.npz"
    data = NPZ.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.npz"):
        convert([bad], "npz", tmp_path / "o.hdf5")


# --- aedat4 ---------------------------------------------------------------------------
@needs_real
def test_real_aedat4(tmp_path):
    import aedat

    out = tmp_path / "shiba.hdf5"
    s = convert([AEDAT], "aedat4", out)
    ev_parts, frames, imu = [], 0, 0
    for packet in aedat.Decoder(str(AEDAT)):
        if "events" in packet:
            ev_parts.append(packet["events"])
        elif "frame" in packet:
            frames += 1
        elif "imus" in packet:
            imu += len(packet["imus"])
    ref = np.concatenate(ev_parts)
    ev = _events(out, "left")
    assert len(ev) == len(ref) == 6676
    assert np.array_equal(_us(ev[:, 2]), ref["t"].astype(np.int64))
    assert np.array_equal(ev[:, 0], ref["x"]) and np.array_equal(ev[:, 1], ref["y"])
    assert np.array_equal(ev[:, 3] > 0, ref["on"])
    assert _events(out, "right").shape == (0, 4)
    assert s["sensor"] == {"width": 346, "height": 260}
    assert s["images"] == frames == 4 and s["imu_samples"] == imu > 0
    assert any("right camera" in n and "empty" in n for n in s["notes"])
    with h5py.File(out, "r") as f:
        assert f["davis/left/image_raw"].shape == (4, 260, 346) and f["davis/left/image_raw"].dtype == np.uint8
        assert f["davis/left/imu"].shape == (imu, 6)
        assert np.all(np.diff(f["davis/left/image_raw_ts"][:]) > 0)
        g = np.linalg.norm(f["davis/left/imu"][:, :3], axis=1)
        assert np.all((g > 8) & (g < 12))  # accelerometer in m/s^2 at rest ~ 9.8


@needs_real
def test_truncated_aedat4(tmp_path):
    bad = tmp_path / "cut.aedat4"
    data = AEDAT.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.aedat4.*(truncated|corrupt)"):
        convert([bad], "aedat4", tmp_path / "o.hdf5")
    assert not (tmp_path / "o.hdf5").exists() and not _leftovers(tmp_path)


# --- DSEC -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dsec_seq(tmp_path_factory):
    return write_dsec_sequence(tmp_path_factory.mktemp("dsec"), n_events=(3000, 2500), n_gt=3)


def test_dsec_to_mvsec(dsec_seq, tmp_path):
    out = tmp_path / "zurich_city_00_a_data.hdf5"
    s = convert([dsec_seq["path"]], "dsec", out, chunk=700)
    assert s["gt"] == str(tmp_path / "zurich_city_00_a_gt.hdf5")
    assert s["calibration"] == str(tmp_path / "zurich_city_00_a_calib" / "camchain-imucam-zurich_city_00_a.yaml")
    with DSECRecording(dsec_seq["path"]) as rec:
        for c in ("left", "right"):
            e = rec.events(c, 0, 2**62)
            ev = _events(out, c)
            assert len(ev) == len(e) == s["cameras"][c]["events"] < rec.num_events(c)
            assert np.array_equal(_us(ev[:, 2]), e.t)
            assert np.array_equal(ev[:, 0], e.x) and np.array_equal(ev[:, 1], e.y) and np.array_equal(ev[:, 3], e.p)
        with h5py.File(s["gt"], "r") as g:
            depth = g["davis/left/depth_image_rect"][:]
            ts = g["davis/left/depth_image_rect_ts"][:]
            assert depth.shape == (3, 480, 640) and depth.dtype == np.float32
            assert np.array_equal(_us(ts), rec.gt_timestamps())
            for i in range(3):
                expected = dsec_seq["fB"] / dsec_seq["disparities"][i]
                assert np.array_equal(np.isnan(depth[i]), np.isnan(expected))
                assert np.allclose(depth[i], expected, rtol=1e-5, equal_nan=True)
    cal = load_camchain(s["calibration"])
    assert cal.left.distortion_model == "none" == cal.right.distortion_model
    assert np.allclose(cal.left.R, np.eye(3)) and np.allclose(cal.right.R, np.eye(3))
    assert cal.focal == pytest.approx(dsec_seq["focal"]) and cal.fB == pytest.approx(dsec_seq["fB"])
    assert cal.size == (480, 640)
    with h5py.File(out, "r") as f:
        assert f.attrs["sensor_width"] == 640 and f.attrs["sensor_height"] == 480


def test_dsec_truncated_hdf5(dsec_seq, tmp_path):
    import shutil

    seq = tmp_path / "seq"
    shutil.copytree(dsec_seq["path"], seq)
    f = seq / "events" / "left" / "events.h5"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as err:
        convert([seq], "dsec", tmp_path / "o.hdf5")
    assert str(f) in str(err.value)
    assert not (tmp_path / "o.hdf5").exists() and not (tmp_path / "o_gt.hdf5").exists() and not _leftovers(tmp_path)


# --- general --------------------------------------------------------------------------
def test_missing_input(tmp_path):
    for fmt in ("text", "npz", "aedat4", "dsec"):
        with pytest.raises(InputError, match="nothere") as err:
            convert([tmp_path / "nothere"], fmt, tmp_path / "o.hdf5")
        assert "\n" not in str(err.value)


def test_option_for_another_format(tmp_path):
    src = tmp_path / "a.npz"
    np.savez(src, left=np.zeros((1, 4), np.int64), right=np.zeros((1, 4), np.int64))
    with pytest.raises(InputError, match="--one-based does not apply to the npz format"):
        convert([src], "npz", tmp_path / "o.hdf5", one_based=True)


def test_failure_and_interrupt_leave_existing_output_untouched(tmp_path):
    out = tmp_path / "keep.hdf5"
    out.write_bytes(b"precious")
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{i} 1 1 1\n" for i in range(50)) + "oops\n")
    with pytest.raises(InputError):
        convert([src], "text", out, time_unit="us", sensor=(4, 4), chunk=10)
    assert out.read_bytes() == b"precious" and not _leftovers(tmp_path)

    class Interrupt:
        def __init__(self, **kw):
            self.n = 0

        def update(self, n=1):
            self.n += 1
            if self.n == 2:
                raise KeyboardInterrupt

        def close(self):
            pass

    src.write_text("".join(f"{i} 1 1 1\n" for i in range(50)))
    with pytest.raises(KeyboardInterrupt):
        convert([src], "text", out, time_unit="us", sensor=(4, 4), chunk=10, progress=Interrupt)
    assert out.read_bytes() == b"precious" and not _leftovers(tmp_path)
    convert([src], "text", out, time_unit="us", sensor=(4, 4))
    assert len(_events(out, "left")) == 50


def test_stale_companions_are_removed(dsec_seq, tmp_path):
    out = tmp_path / "rec.hdf5"
    convert([dsec_seq["path"]], "dsec", out)
    assert (tmp_path / "rec_gt.hdf5").exists() and (tmp_path / "rec_calib" / "camchain-imucam-rec.yaml").exists()
    src = tmp_path / "mono.txt"
    src.write_text("1 1 1 1\n")
    s = convert([src], "text", out, sensor=(4, 4))
    assert not (tmp_path / "rec_gt.hdf5").exists() and not (tmp_path / "rec_calib").exists()
    assert any("removed" in n for n in s["notes"])


# --- CLI ------------------------------------------------------------------------------
def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "data_tools.convert", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_bad_and_good_input(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3 1\nnot an event\n")
    r = _cli(bad, "--format", "text", "--out", tmp_path / "o.hdf5")
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "bad.txt" in err and "line 2" in err and "Traceback" not in err
    assert not (tmp_path / "o.hdf5").exists()

    good = tmp_path / "good.txt"
    good.write_text("0.001 1 2 1 left\n0.002 3 4 0 right\n")
    r = _cli(good, "--format", "text", "--sensor", "8", "8", "--out", tmp_path / "o.hdf5")
    assert r.returncode == 0, r.stderr
    assert "left" in r.stdout and "1 events" in r.stdout
    assert _events(tmp_path / "o.hdf5", "right").shape == (1, 4)


def test_converted_dsec_reads_like_the_original(dsec_seq, tmp_path):
    """The MVSEC-layout reader gives the converted file the DSEC reader's events and depth."""
    from evstereo.recordings import open_recording

    out = tmp_path / "seq_data.hdf5"
    convert([dsec_seq["path"]], "dsec", out)
    off = dsec_seq["t_offset"]
    with open_recording(out) as conv, DSECRecording(dsec_seq["path"]) as orig:
        assert conv.sensor_size == orig.sensor_size == (480, 640)
        assert conv.fB == pytest.approx(orig.fB)
        assert np.array_equal(conv.gt_timestamps(), orig.gt_timestamps())
        for cam in ("left", "right"):
            for t0, t1 in ((off + 1000, off + 51_000), (off - 1, off + 10**7)):
                a, b = conv.events(cam, t0, t1), orig.events(cam, t0, t1)
                assert np.array_equal(a.t, b.t) and np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
                assert np.array_equal(a.p, b.p)
        i = 1
        assert np.allclose(conv.depth(i), orig.depth(i), equal_nan=True)
        assert np.allclose(conv.disparity(i), orig.disparity(i), rtol=1e-5, equal_nan=True)


@needs_real
def test_converted_npz_opens_as_a_recording(tmp_path):
    from evstereo.recordings import open_recording

    out = tmp_path / "pendulum.hdf5"
    convert([NPZ], "npz", out, right_offset=(0, -4))
    with open_recording(out) as rec:
        assert rec.sensor_size == (128, 128) and rec.calibration is None
        assert rec.num_events("left") == 141252 and rec.num_events("right") == 261307
        e = rec.events("right", -1, 10**9)  # the first right event is at t = 0
        assert len(e) == 261307 and e.y.max() == 127
