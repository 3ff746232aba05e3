"""One exception type for bad input, so every reader reports problems the same way."""

from __future__ import annotations

import os


class InputError(ValueError):
    """A file the user gave us is unusable; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
