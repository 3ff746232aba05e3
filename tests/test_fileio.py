"""Atomic writes: temporaries carry the pid and are swept after a kill; errors name the final file."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
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
