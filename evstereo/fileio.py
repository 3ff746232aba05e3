"""File helpers. Atomic writing: write to a temporary name beside the target, then rename, so an
interrupted job never leaves a half-written file under the final name. Reading YAML with one
clear error for a missing or malformed file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from evstereo.errors import InputError


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Give a finished temporary file normal permissions (mkstemp makes it 0600) and rename it."""
    os.chmod(tmp, _umask_mode())
    os.replace(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    On an exception the temporary file is removed and an existing ``path`` is untouched.
    The temporary name keeps the target's suffix so libraries that look at it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        publish(tmp_path, path)
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
