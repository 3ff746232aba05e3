"""Command-line programs (argument parsing and wiring; the logic lives in evstereo/).

Importing torch and friends takes seconds; Ctrl-C during that start-up must still end with one
line and exit 130, not a traceback: the guard covers the imports, and each tool's
``evstereo.errors.run_tool`` replaces it once its work starts.
"""

from evstereo.errors import install_startup_guard

install_startup_guard()
