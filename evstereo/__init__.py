"""evstereo: event-camera stereo depth with searched spiking neural networks.

Importing the package has no side effects beyond a default for numba's threading layer
(below); the sub-packages follow the data flow recording -> events -> representation ->
model -> disparity -> depth / point cloud.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# numba tries TBB first for its parallel kernels and warns at every run when the installed TBB
# is too old; OpenMP (then numba's own work queue) does the same job without the warning. Only
# a default: a user's NUMBA_THREADING_LAYER(_PRIORITY) wins.
if "NUMBA_THREADING_LAYER_PRIORITY" not in _os.environ and "NUMBA_THREADING_LAYER" not in _os.environ:
    _os.environ["NUMBA_THREADING_LAYER_PRIORITY"] = "omp workqueue tbb"
    if "numba" in _sys.modules:  # imported before us: its config is already read
        _sys.modules["numba"].config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]
