"""One exception type for bad input, and one way for the command-line tools to end.

Every tool ends the same way (:func:`run_tool`): bad input (:class:`InputError`) or a file
system that refuses a write (``OSError`` with a file name: read-only, full, a folder where a
file is expected) prints ``error: <one line>`` and exits 2; Ctrl-C or SIGTERM prints one line
and exits 130, also when Python swallowed the Ctrl-C in a garbage-collection callback
(:class:`_SwallowedInterrupts`); after such an interrupt no output is renamed into place
(:func:`check_interrupted`, called by ``evstereo.fileio.publish``).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import time
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


class _SwallowedInterrupts:
    """Ctrl-C that Python swallows. A signal handler's KeyboardInterrupt that fires inside a
    garbage-collection callback (a weakref's ``remove``, a ``__del__``) cannot propagate: Python
    prints "Exception ignored in ..." and the tool runs on to the end with exit 0. This hook
    takes such an interrupt silently and sends SIGINT again a moment later, from another
    thread, so that it lands in the tool's own code; :func:`run_tool` still reports one that
    never landed. A re-sent SIGINT that arrives after the tool has ended is dropped (counted:
    ``_sent`` is written only by the timer thread, ``_received`` only by the handler)."""

    def __init__(self) -> None:
        self.pending = False
        self._open = True
        self._sent = self._received = 0
        self._lock = threading.Lock()  # never taken by the signal handler (it could deadlock)
        self._timers: list[threading.Timer] = []
        self._previous_hook = None

    def install(self, main_thread: bool) -> None:
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._hook
        if main_thread:
            signal.signal(signal.SIGINT, self._on_sigint)  # also undoes the start-up guard

    def uninstall(self) -> None:
        with self._lock:
            self._open = False
        # A timer that passed the check may still be waiting for the GIL to send its SIGINT;
        # one that lands during interpreter shutdown (default handlers again) would kill us.
        for timer in self._timers:
            timer.join(1.0)
        deadline = time.monotonic() + 1.0
        while self._received < self._sent and time.monotonic() < deadline:
            time.sleep(0.001)  # the handler runs here and drops it
        self._timers.clear()
        if self._previous_hook is not None:
            sys.unraisablehook = self._previous_hook

    def _on_sigint(self, signum, frame):
        if self._received < self._sent:  # one of ours
            self._received += 1
            if not self._open:
                return
        self.pending = False  # delivered: clean-up code may publish what it keeps on Ctrl-C
        raise KeyboardInterrupt

    def _hook(self, unraisable) -> None:
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            return self._previous_hook(unraisable)
        self.pending = True
        if threading.current_thread() is threading.main_thread():  # only there does SIGINT raise
            timer = threading.Timer(0.01, self._resend)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _resend(self) -> None:
        with self._lock:
            if not self._open:
                return
            self._sent += 1
        os.kill(os.getpid(), signal.SIGINT)


_active: _SwallowedInterrupts | None = None  # the running tool's, if any


def check_interrupted() -> None:
    """Raise KeyboardInterrupt if the user's Ctrl-C was swallowed and not yet re-delivered.
    Called before a finished file takes its final name, so that an interrupted tool never
    publishes its output and then reports the interrupt."""
    if _active is not None and _active.pending:
        _active.pending = False  # raised once, like a delivered Ctrl-C
        raise KeyboardInterrupt


def run_tool(body: Callable[[], int | None], interrupted: str = "interrupted") -> int:
    """Run a tool's body and turn its ending into an exit status (see the module doc).

    ``interrupted`` is the line printed on Ctrl-C/SIGTERM, e.g. ``"interrupted: run the same
    command again to resume"``. SIGTERM is handled like Ctrl-C while the body runs.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread (tests calling main() from a thread)
        previous = None
    global _active
    swallowed = _active = _SwallowedInterrupts()
    swallowed.install(main_thread=previous is not None)
    try:
        code = body()
        check_interrupted()  # the user asked to stop; the work ended before the re-sent signal
        return 0 if code is None else int(code)
    except InputError as exc:
        return print_error(exc)
    except KeyboardInterrupt:
        swallowed.uninstall()  # before printing: no second SIGINT may follow this line
        print(interrupted, file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        return print_error(message)
    finally:
        swallowed.uninstall()
        _active = None
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
