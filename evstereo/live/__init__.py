"""The live session: the streaming engine + the viewers + the headless outputs + the controls.

``session``   ``LiveSession`` (one run: frames -> composite -> windows and/or files -> report),
              ``LiveOptions``, ``run_live`` (a whole run, always finalised), ``build_model``,
              ``format_summary``
``outputs``   the headless writers (video, depth/disparity PNGs, NPY arrays, PLY clouds,
              timings.json), written atomically on a background thread
``controls``  ``PlaybackControl`` (the pausable replay clock), ``RateMeter``, ``RunningMetrics``

Layering: this package uses ``evstereo.inference``, ``evstereo.viz``, ``evstereo.models`` and
``evstereo.recordings``; ``apps.live_depth`` is its command line and the live benchmark runs
it in-process.
"""

from evstereo.live.session import LiveOptions, LiveResult, LiveSession, Quit, build_model, format_summary, run_live

__all__ = ["LiveOptions", "LiveResult", "LiveSession", "Quit", "build_model", "format_summary", "run_live"]
