"""Command-line programs (argument parsing and wiring; the logic lives in evstereo/).

Importing torch and friends takes seconds; Ctrl-C during that start-up must still end with one
line and exit 130, not a traceback. This guard covers the imports; each tool's
``evstereo.errors.run_tool`` replaces it once its work starts.
"""

import os as _os
import signal as _signal
import sys as _sys


def _startup_interrupt(signum, frame):
    print("interrupted", file=_sys.stderr, flush=True)
    _os._exit(130)


try:
    _signal.signal(_signal.SIGINT, _startup_interrupt)
    _signal.signal(_signal.SIGTERM, _startup_interrupt)
except ValueError:  # imported outside the main thread
    pass
