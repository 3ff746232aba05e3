"""Atomic writes: temporaries carry the pid and are swept after a kill; errors name the final file."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evstereo.errors import InputError, run_tool
from evstereo.fileio import atomic_path, temp_path, write_text_atomic


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporaries_of_a_killed_process_are_swept(tmp_path):
    target = tmp_path / "out.h5"
    stale = tmp_path / f".out.h5.{_dead_pid()}-abc.tmp.h5"
    stale.write_bytes(b"x" * 1000)
    alive = tmp_path / f".out.h5.{os.getppid()}-def.tmp.h5"  # a running process's: kept
    alive.write_bytes(b"y")
    other = tmp_path / f".other.h5.{_dead_pid()}-ghi.tmp.h5"  # another target's: kept
    other.write_bytes(b"z")
    write_text_atomic(target, "done")
    assert target.read_text() == "done"
    assert not stale.exists() and alive.exists() and other.exists()


def test_temp_name_keeps_the_suffix_and_the_pid(tmp_path):
    tmp = temp_path(tmp_path / "video.mp4")
    assert tmp.name.startswith(f".video.mp4.{os.getpid()}-") and tmp.name.endswith(".tmp.mp4")


def test_errors_name_the_final_file_not_the_temporary(tmp_path):
    target = tmp_path / "r.json"

    def body():
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    with pytest.raises(OSError) as info:
        body()
    assert info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_as_target_is_refused(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        write_text_atomic(tmp_path, "x")


def test_run_tool_endings(capsys):
    assert run_tool(lambda: 0) == 0
    assert run_tool(lambda: (_ for _ in ()).throw(InputError("f.h5", "is broken"))) == 2
    assert capsys.readouterr().err == "error: f.h5: is broken\n"

    def full():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.h5")

    assert run_tool(full) == 2
    assert capsys.readouterr().err == "error: /data/out.h5: No space left on device\n"

    def interrupted():
        raise KeyboardInterrupt

    assert run_tool(interrupted, "interrupted: run it again") == 130
    assert capsys.readouterr().err == "interrupted: run it again\n"

    def bug():
        raise OSError(errno.EAGAIN, "try again")  # not about a user's file: a real error

    with pytest.raises(OSError):
        run_tool(bug)


class _InterruptedWhileCollected:
    def __del__(self):  # what a SIGINT landing in a weakref/GC callback looks like to Python
        raise KeyboardInterrupt


@pytest.mark.parametrize("work_after", [0.0, 5.0])
def test_run_tool_does_not_lose_a_ctrl_c_swallowed_by_garbage_collection(capsys, tmp_path, work_after):
    """Python can only print "Exception ignored" for such an interrupt and would run on to exit 0;
    run_tool re-delivers it (cutting the remaining work short), and no output takes its final
    name after it (the quick body reaches the rename before the re-sent signal)."""
    def body():
        _InterruptedWhileCollected()  # collected at once: its KeyboardInterrupt is swallowed
        end = time.monotonic() + work_after
        while time.monotonic() < end:
            time.sleep(0.005)
        write_text_atomic(tmp_path / "out.txt", "done")
        return 0

    hook, start = sys.unraisablehook, time.monotonic()
    assert run_tool(body, "interrupted: resume") == 130
    assert time.monotonic() - start < 2.0  # the re-sent SIGINT stopped the 5 s of work
    assert capsys.readouterr().err == "interrupted: resume\n"  # one line, no "Exception ignored"
    assert sys.unraisablehook is hook  # put back
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary


def test_clean_up_after_a_re_delivered_ctrl_c_may_still_publish(capsys, tmp_path):
    """What live depth does on Ctrl-C (finish its video and timings) still works when the Ctrl-C
    was first swallowed and then re-delivered: the pending interrupt is raised once, not again
    at every later rename."""
    def body():
        _InterruptedWhileCollected()
        try:
            end = time.monotonic() + 5.0
            while time.monotonic() < end:
                time.sleep(0.005)
        except KeyboardInterrupt:
            write_text_atomic(tmp_path / "kept.txt", "what was written so far")
            raise
        return 0

    assert run_tool(body) == 130
    assert (tmp_path / "kept.txt").read_text() == "what was written so far"
    assert capsys.readouterr().err == "interrupted\n"
