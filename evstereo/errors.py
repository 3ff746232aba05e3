"""One exception type for bad input, and one way for the command-line tools to end.

Every tool ends the same way (:func:`run_tool`): bad input (:class:`InputError`) or a file
system that refuses a write (``OSError`` with a file name: read-only, full, a folder where a
file is expected) prints ``error: <one line>`` and exits 2; Ctrl-C or SIGTERM prints one line
and exits 130.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Callable

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# OS errors that are about the user's files or disks, not bugs: reported as one line.
_USER_OS_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR,
                   errno.ENOENT, errno.EDQUOT, errno.EEXIST, errno.EFBIG, errno.ENAMETOOLONG, errno.EIO}


class InputError(ValueError):
    """A file the user gave us is unusable; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def print_error(exc: BaseException | str, code: int = EXIT_BAD_INPUT) -> int:
    """Print ``error: <message>`` as one line on stderr (the apps' way to end on bad input) and
    return ``code`` for the process exit status."""
    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
    return code


def os_error_message(exc: OSError) -> str | None:
    """``PATH: reason`` for an OSError about a user's file or disk (None for other errors)."""
    if exc.errno not in _USER_OS_ERRORS and exc.filename is None:
        return None
    reason = exc.strerror or os.strerror(exc.errno or 0) or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {reason}"
    return reason if exc.errno in _USER_OS_ERRORS else None


def _startup_interrupt(signum, frame):
    print("interrupted", file=sys.stderr, flush=True)
    os._exit(EXIT_INTERRUPTED)  # nothing is written yet: no clean-up to run


def install_startup_guard() -> None:
    """Ctrl-C/SIGTERM while a tool is still importing torch and friends (seconds): one line and
    exit 130 instead of a traceback. The tool's :func:`run_tool` replaces it once work starts."""
    try:
        signal.signal(signal.SIGINT, _startup_interrupt)
        signal.signal(signal.SIGTERM, _startup_interrupt)
    except ValueError:  # imported outside the main thread
        pass


def _raise_interrupt(signum, frame):  # SIGTERM -> the same clean shutdown as Ctrl-C
    raise KeyboardInterrupt


def run_tool(body: Callable[[], int | None], interrupted: str = "interrupted") -> int:
    """Run a tool's body and turn its ending into an exit status (see the module doc).

    ``interrupted`` is the line printed on Ctrl-C/SIGTERM, e.g. ``"interrupted: run the same
    command again to resume"``. SIGTERM is handled like Ctrl-C while the body runs.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # undo the start-up guard
    except ValueError:  # not the main thread (tests calling main() from a thread)
        previous = None
    try:
        code = body()
        return 0 if code is None else int(code)
    except InputError as exc:
        return print_error(exc)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        return print_error(message)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
