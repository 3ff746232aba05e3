"""evstereo: event-camera stereo depth with searched spiking neural networks.

Importing the package has no side effects; the sub-packages follow the data flow
recording -> events -> representation -> model -> disparity -> depth / point cloud.
"""

__version__ = "0.1.0"
