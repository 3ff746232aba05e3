"""One exception type for bad input, so every reader reports problems the same way."""

from __future__ import annotations

import os
import sys


class InputError(ValueError):
    """A file the user gave us is unusable; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def print_error(exc: BaseException | str, code: int = 2) -> int:
    """Print ``error: <message>`` as one line on stderr (the apps' way to end on bad input) and
    return ``code`` for the process exit status."""
    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
    return code
