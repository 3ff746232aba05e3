"""Process-wide settings for long CPU inference loops.

glibc serves every allocation above its mmap threshold (128 KB by default, adapted up to
32 MB) with a fresh ``mmap`` and returns it with ``munmap`` on free, so a network that
allocates tens of MB of activations per frame pays page faults and kernel zeroing on every
frame: measured on the live-depth loop here, 6-8 s of system time per 200 frames and about
15 ms per frame. :func:`keep_freed_memory` raises the thresholds so freed blocks stay in the
heap and the next frame reuses them; memory stays flat (the same blocks come back each frame).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit for this setting on 64-bit
TRIM_THRESHOLD = 512 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (see the module doc); False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
