"""File helpers. Atomic writing: write to a temporary name beside the target, then rename, so an
interrupted job never leaves a half-written file under the final name. Reading YAML with one
clear error for a missing or malformed file.

Temporary names are ``.<name>.<pid>-<random>.tmp<suffix>`` (see :func:`temp_path`): a run
killed with SIGKILL cannot remove its own, so the next write of the same target removes every
temporary of that target whose process is gone (:func:`sweep_stale_temps`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from evstereo.errors import InputError, check_interrupted

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[^.]+\.tmp")


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by processes that no longer run; returns them."""
    path = Path(path)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None or m["name"] != path.name or _pid_alive(int(m["pid"])):
            continue
        try:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def temp_path(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """Create (empty) and return a temporary file beside ``path`` for writing it atomically.

    Its name ends in ``.tmp`` + ``suffix`` (default: the target's suffix, so libraries that look
    at it still work) and carries this process's id, so a later run can remove it when this
    process was killed. Stale temporaries of the same target are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-",
                               suffix=".tmp" + (path.suffix if suffix is None else suffix), dir=path.parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Give a finished temporary file normal permissions (mkstemp makes it 0600) and rename it
    (not if the user has pressed Ctrl-C: :func:`evstereo.errors.check_interrupted`)."""
    check_interrupted()
    os.chmod(tmp, _umask_mode())
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On an exception the temporary file is removed and an existing ``path`` is untouched.
    The temporary name keeps the target's suffix so libraries that look at it still work.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder; give a file name")
    try:
        tmp_path = temp_path(path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        yield tmp_path
        publish(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.filename is not None and Path(exc.filename) == tmp_path:  # name the file the user asked for
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write a binary file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def check_writable(path: str | os.PathLike, folder: bool = False, need_bytes: int = 1 << 20) -> Path:
    """Fail early, before any long computation, when ``path`` (a file, or with ``folder`` a
    folder) cannot be written: a read-only or full file system, a folder where a file is
    expected, a file where a folder is expected. Creates the missing parent folders.

    Raises OSError with the path (printed by the apps as ``error: PATH: <reason>``).
    """
    path = Path(path)
    target_dir = path if folder else path.parent
    if not folder and path.is_dir():
        raise InputError(path, "is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise InputError(path, "is a file; give a folder")
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=f".write-check.{os.getpid()}-", dir=target_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        free = shutil.disk_usage(target_dir).free
    except OSError:
        free = None
    if free is not None and free < need_bytes:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return path


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """The parsed contents of a YAML file; InputError naming the file when it is missing
    (``"<what> does not exist"``) or not YAML. Callers check the shape they need."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(path, f"is not valid YAML ({exc.__class__.__name__})") from None
