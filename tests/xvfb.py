"""A private Xvfb X server for window tests (CI has the xvfb package but no display).

``xvfb_display()`` starts ``Xvfb -displayfd``, which picks a free display number itself and
writes it to a pipe once the server accepts connections (no guessing, no races with other
servers on the machine), and stops the server afterwards. ``grab_screen`` takes a real
screenshot of the root window through Pillow's XCB support (``ImageGrab.grab(xdisplay=...)``),
so no extra Debian package (xwd, ImageMagick, xdotool) is needed.

Use the ``xvfb`` fixture (``from xvfb import xvfb``): it yields the display string, e.g. ":3",
and sets DISPLAY for the test. Windows should run in subprocesses given that DISPLAY: a GUI
toolkit left connected to a server that has gone away can abort the test process.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import time
from typing import Iterator

import numpy as np
import pytest

SCREEN = (1920, 1200)


@contextlib.contextmanager
def xvfb_display(width: int = SCREEN[0], height: int = SCREEN[1], timeout_s: float = 15.0) -> Iterator[str]:
    """Run Xvfb on a free display number for the duration of the block; yields ":N"."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(w)
    try:
        num = b""
        deadline = time.monotonic() + timeout_s
        while not num.endswith(b"\n"):
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(r, 64) if ready else b""
            if not chunk:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else "timed out"
                raise RuntimeError(f"Xvfb did not start: {err.strip()[-500:]}")
            num += chunk
        yield f":{int(num)}"
    finally:
        os.close(r)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def xvfb(monkeypatch) -> Iterator[str]:
    """A fresh Xvfb display for one test, with DISPLAY set (and WAYLAND_DISPLAY cleared)."""
    with xvfb_display() as display:
        monkeypatch.setenv("DISPLAY", display)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        yield display


def grab_screen(display: str) -> np.ndarray:
    """A screenshot of the whole X screen as a BGR uint8 array."""
    from PIL import ImageGrab, features

    if not features.check("xcb"):
        pytest.skip("this Pillow was built without XCB support, so it cannot take X screenshots")
    img = ImageGrab.grab(xdisplay=display)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])


def content_box(screen: np.ndarray, box: tuple[int, int, int, int] | None = None) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the non-black pixels (the root window of Xvfb is black), within ``box`` if given."""
    x0, y0 = 0, 0
    if box is not None:
        x0, y0, w, h = box
        screen = screen[y0 : y0 + h, x0 : x0 + w]
    ys, xs = np.nonzero(screen.max(axis=2) > 0)
    if not len(xs):
        return None
    return x0 + int(xs.min()), y0 + int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
