"""The data tools under a full or read-only disk, kill -9 and Ctrl-C.

Full and read-only disks are real: small tmpfs mounts (skipped, with the reason, where this
process may not mount). A simulated full disk at the h5py write boundary runs everywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from evstereo.datasets.prepared import cache_path, prepare_recording
from evstereo.datasets.samples import SampleSpec
from evstereo.recordings import open_recording
from evstereo.recordings.mvsec_writer import MVSECWriter

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _tool(*args) -> list[str]:
    return [PY, "-m", *[str(a) for a in args]]


def _run(cmd, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _lines(stderr: str) -> list[str]:
    """stderr lines, progress-bar redraws removed."""
    return [ln.split("\r")[-1].strip() for ln in stderr.splitlines() if ln.split("\r")[-1].strip()]


def _temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial"))


def _one_error(r: subprocess.CompletedProcess, *parts: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = _lines(r.stderr)
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, lines
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-2000:]
    for p in parts:
        assert p in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def text_events(tmp_path_factory) -> Path:
    """A 400 k line 't x y p camera' text file (us), about 12 MB once converted."""
    rng = np.random.default_rng(0)
    n = 400_000
    cols = np.stack([np.sort(rng.integers(0, 2_000_000, n)), rng.integers(0, 346, n), rng.integers(0, 260, n),
                     rng.integers(0, 2, n), rng.integers(0, 2, n)], 1)
    path = tmp_path_factory.mktemp("text") / "events.txt"
    np.savetxt(path, cols, fmt="%d")
    return path


def _mount(folder: Path, options: str) -> None:
    if os.name != "posix" or shutil.which("mount") is None:
        pytest.skip("no mount command")
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip() or r.returncode}")


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MB file system: every tool below writes more than that."""
    folder = tmp_path / "full"
    _mount(folder, "size=2m")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def read_only_disk(tmp_path):
    folder = tmp_path / "ro"
    _mount(folder, "ro,size=1m")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


# --- full and read-only disks ----------------------------------------------------------
def test_full_disk_midway_is_one_line_and_leaves_nothing(full_disk, text_events, random_recording):
    """Each tool runs out of space midway: one line naming its output, exit 2, no crash at exit
    (synth and convert segfaulted in h5py's destructors), and every temporary removed."""
    r = _run(_tool("data_tools.synth", "--out", full_disk / "s", "--name", "a", "--seconds", 0.3, "--seed", 1, "-q"))
    _one_error(r, str(full_disk / "s" / "a_data.hdf5") if "a_data" in r.stderr else str(full_disk / "s"),
               "No space left on device")
    r = _run(_tool("data_tools.convert", text_events, "--format", "text", "--time-unit", "us",
                   "--out", full_disk / "c.hdf5", "-q"))
    _one_error(r, str(full_disk / "c.hdf5"), "No space left on device")
    r = _run(_tool("data_tools.prepare", random_recording, "--out", full_disk / "cache", "-q"))
    _one_error(r, str(full_disk / "cache"), "No space left on device")
    leftovers = [p for p in full_disk.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
    assert shutil.disk_usage(full_disk).used < 256 << 10  # the space came back


def test_full_disk_is_checked_before_the_work(full_disk, text_events):
    filler = full_disk / "filler"
    with open(filler, "wb") as fh:
        try:
            fh.write(b"\0" * (4 << 20))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    for cmd, out in (
        (_tool("data_tools.synth", "--out", full_disk / "s", "--name", "a", "--seconds", 5, "--seed", 1), full_disk / "s"),
        (_tool("data_tools.convert", text_events, "--format", "text", "--out", full_disk / "c.hdf5"), full_disk / "c.hdf5"),
    ):
        t = time.monotonic()
        r = _run(cmd)
        _one_error(r, str(out), "No space left on device")
        assert "synth a:" not in r.stderr and time.monotonic() - t < 30  # no simulation started
    assert sorted(p.name for p in full_disk.rglob("*") if p.is_file()) == ["filler"]


def test_read_only_disk(read_only_disk, text_events, random_recording):
    for cmd, out in (
        (_tool("data_tools.synth", "--out", read_only_disk / "s", "--name", "a", "--seconds", 1, "--seed", 1),
         read_only_disk / "s"),
        (_tool("data_tools.convert", text_events, "--format", "text", "--out", read_only_disk / "c.hdf5"),
         read_only_disk / "c.hdf5"),
        (_tool("data_tools.prepare", random_recording, "--out", read_only_disk / "cache"), read_only_disk / "cache"),
    ):
        _one_error(_run(cmd), str(out), "Read-only file system")


def _h5py_write_fails_after(monkeypatch, calls: int) -> None:
    """Make the calls-th h5py dataset write fail the way HDF5 reports a full disk."""
    real = h5py.Dataset.__setitem__
    count = {"n": 0}

    def failing(self, key, value):
        count["n"] += 1
        if count["n"] >= calls:
            raise OSError(f"Can't synchronously write data (file write failed: time = now, filename = "
                          f"'{self.file.filename}', file descriptor = 3, errno = 28, error message = "
                          f"'No space left on device', buf = 0x0, total write size = 1, bytes this sub-write = 1)")
        return real(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)


def test_simulated_full_disk_in_the_writer(tmp_path, monkeypatch):
    """Where mounting is not allowed: a write that fails like ENOSPC names the final file and
    removes both temporaries (an existing file under the final name stays)."""
    out = tmp_path / "w_data.hdf5"
    out.write_bytes(b"earlier")
    _h5py_write_fails_after(monkeypatch, 3)
    rng = np.random.default_rng(0)
    with pytest.raises(OSError) as exc:
        with MVSECWriter(out, tmp_path / "w_gt.hdf5") as w:
            for k in range(40):
                n = 20_000
                w.add_events("left", rng.integers(0, 346, n), rng.integers(0, 260, n),
                             1.5e9 + k + np.sort(rng.uniform(0, 1, n)), rng.choice([-1, 1], n))
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w_data.hdf5"] and out.read_bytes() == b"earlier"


def test_simulated_full_disk_in_prepare(tmp_path, monkeypatch, random_recording):
    out = tmp_path / "cache.h5"
    _h5py_write_fails_after(monkeypatch, 5)
    with pytest.raises(OSError) as exc:
        prepare_recording(random_recording, out, SampleSpec(), progress=False)
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(out)
    assert list(tmp_path.iterdir()) == []  # the partial file gave its space back


# --- kill -9, then the same command -----------------------------------------------------
def _kill_when(cmd, ready, timeout=120) -> None:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run never got far enough to be killed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


def _big_temporary(folder: Path, prefix: str, size: int):
    def ready() -> bool:
        return any(p.name.startswith(prefix) and ".tmp" in p.name and p.stat().st_size > size
                   for p in folder.glob(".*") if p.is_file())
    return ready


def test_synth_killed_then_rerun_leaves_no_temporary(tmp_path):
    out = tmp_path / "syn"
    cmd = _tool("data_tools.synth", "--out", out, "--name", "k", "--seconds", 0.3, "--seed", 4, "-q")
    _kill_when(cmd, _big_temporary(out, ".k_data.hdf5.", 1 << 20))
    assert _temporaries(out), "the killed run left its temporaries (the case under test)"
    r = _run(cmd)
    assert r.returncode == 0, r.stderr
    assert _temporaries(out) == []
    with open_recording(out / "k_data.hdf5") as rec:
        assert rec.num_events("left") > 100_000 and rec.num_events("right") > 100_000 and rec.has_gt
        rec.check_stereo()
        assert rec.depth(len(rec.gt_timestamps()) - 1).shape == (260, 346)


def test_convert_killed_then_rerun_leaves_no_temporary(tmp_path, text_events):
    out = tmp_path / "conv" / "rec.hdf5"
    cmd = _tool("data_tools.convert", text_events, "--format", "text", "--time-unit", "us", "--out", out, "-q")
    _kill_when(cmd, _big_temporary(out.parent, ".rec.hdf5.", 1 << 20))
    assert _temporaries(out.parent), "the killed run left its temporary (the case under test)"
    r = _run(cmd)
    assert r.returncode == 0, r.stderr
    assert _temporaries(out.parent) == []
    with open_recording(out) as rec:
        assert rec.num_events("left") + rec.num_events("right") == 400_000


def test_prepare_killed_then_rerun_resumes(tmp_path, random_recording):
    out = tmp_path / "cache"
    cache = cache_path(out, random_recording, SampleSpec())  # the name data_tools.prepare writes (its defaults)
    partial = out / f".{cache.name}.partial"

    def started() -> bool:  # by size only: opening it with h5py would take HDF5's file lock from the writer
        return partial.exists() and partial.stat().st_size > 300_000

    cmd = _tool("data_tools.prepare", random_recording, "--out", out, "-q")
    _kill_when(cmd, started)
    r = _run(cmd)
    assert r.returncode == 0, r.stderr
    assert _temporaries(out) == [] and cache.is_file()
    with h5py.File(cache, "r") as f:
        assert int(f.attrs["done"]) == len(f["frames"]) > 0


# --- Ctrl-C ---------------------------------------------------------------------------------
def _interrupt(cmd, ready=None, delay=0.0, timeout=120) -> subprocess.CompletedProcess:
    """Run ``cmd``, wait until ``ready()`` (or ``ready(proc)`` for a callable taking one
    argument) holds, then ``delay`` s, then send SIGINT."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        check = (lambda: ready(proc)) if ready is not None and ready.__code__.co_argcount == 1 else ready
        while check is not None and not check():
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(delay)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _one_interrupted_line(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 130, (r.returncode, r.stderr[-2000:])
    lines = _lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("interrupted"), lines
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("tool", ["synth", "convert", "inspect", "prepare"])
def test_ctrl_c_during_start_up(tool, tmp_path, random_recording, text_events):
    """SIGINT while the tool is still importing its libraries: one line, exit 130."""
    cmd = {
        "synth": _tool("data_tools.synth", "--out", tmp_path, "--name", "x", "--seconds", 1, "--seed", 1),
        "convert": _tool("data_tools.convert", text_events, "--format", "text", "--out", tmp_path / "c.hdf5"),
        "inspect": _tool("data_tools.inspect", random_recording),
        "prepare": _tool("data_tools.prepare", random_recording, "--out", tmp_path),
    }[tool]
    _one_interrupted_line(_interrupt(cmd, ready=_past_the_guard))
    assert _temporaries(tmp_path) == []


def _past_the_guard(proc: subprocess.Popen) -> bool:
    """The child has started importing its libraries (numpy's extension is mapped), so the data
    tools' start-up guard is in place: an earlier SIGINT would hit Python's own start-up, which
    no tool can catch (tens of ms, longer on a loaded machine). Without /proc: 0.25 s."""
    maps = Path(f"/proc/{proc.pid}/maps")
    if not Path("/proc/self/maps").exists():
        time.sleep(0.25)
        return True
    try:
        return "numpy" in maps.read_text()
    except OSError:  # the child is gone: let _interrupt report that
        return True


def test_ctrl_c_midway(tmp_path, random_recording, text_events):
    """SIGINT while each writing tool writes: one line, exit 130, no temporary (prepare keeps
    its resumable partial file, by design)."""
    out = tmp_path / "s"
    r = _interrupt(_tool("data_tools.synth", "--out", out, "--name", "i", "--seconds", 1, "--seed", 1, "-q"),
                   ready=_big_temporary(out, ".i_data.hdf5.", 1 << 20))
    _one_interrupted_line(r)
    assert [p for p in out.rglob("*") if p.is_file()] == []
    out = tmp_path / "c"
    r = _interrupt(_tool("data_tools.convert", text_events, "--format", "text", "--time-unit", "us",
                         "--out", out / "c.hdf5", "-q"), ready=_big_temporary(out, ".c.hdf5.", 1 << 20))
    _one_interrupted_line(r)
    assert [p for p in out.rglob("*") if p.is_file()] == []
    out = tmp_path / "p"
    cache = cache_path(out, random_recording, SampleSpec())  # the name data_tools.prepare writes (its defaults)
    r = _interrupt(_tool("data_tools.prepare", random_recording, "--out", out, "-q"),
                   ready=lambda: (out / f".{cache.name}.partial").exists(), delay=0.3)
    _one_interrupted_line(r)
    assert "resume" in r.stderr and not cache.exists()
