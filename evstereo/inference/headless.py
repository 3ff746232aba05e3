"""Output writers of a live-depth run with no window (``apps.live_depth --headless``).

Into ``out/``:

- ``live_depth.mp4``: the composite view (``evstereo.viz.viewer.compose_view``), one video
  frame per depth frame at the recording's frame rate. It is written under a temporary
  ``.mp4`` name and renamed by ``close()``, which also runs when the run is interrupted or
  the input turns out corrupt, so the frames written so far always end up playable.
- ``depth/<t_us>.png``: colour-coded depth (inverse-depth colours of ``colorize_depth``), or
  colour-coded disparity when the recording has no calibration (f*B unknown).
- ``disparity/<t_us>.npy``: the raw disparity, float32 (H, W), NaN invalid; ``t_us`` is the
  window's end in the recording's microseconds.
- ``clouds/<t_us>.ply``: the coloured point cloud every ``ply_every`` frames (needs f*B).
- ``timings.json``: written atomically by ``close()`` from what the caller passes.

Every file goes to a temporary name first and is renamed, so none is ever half-written.
The encoding and writing run on one background thread (OpenCV and numpy release the GIL),
overlapping the next frame's model; at most ``queue`` frames wait, and ``close()`` finishes
them all first. A writing error is raised by the next ``add()`` or by ``close()``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from evstereo.fileio import atomic_path, publish, write_text_atomic

VIDEO_NAME = "live_depth.mp4"


class VideoOut:
    """cv2.VideoWriter ('mp4v') into a temporary file, renamed to ``path`` on ``close()``.

    Opened lazily on the first frame (its size fixes the video's); frames of another size
    are resized, since a VideoWriter silently drops them otherwise.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path, self.fps = Path(path), float(fps)
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._tmp: Path | None = None
        self._size: tuple[int, int] | None = None

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp.mp4", dir=self.path.parent)
            os.close(fd)
            self._tmp = Path(tmp)
            self._size = (image.shape[1], image.shape[0])
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                self._tmp.unlink(missing_ok=True)
                raise OSError(f"{self.path}: OpenCV cannot write MP4 video here (no FFmpeg 'mp4v' encoder?)")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(image))
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file (the MP4 index is written on release) and give it its final name."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        publish(self._tmp, self.path)
        return self.path


class HeadlessOutputs:
    """Writes one run's outputs into ``out_dir`` (see the module doc); ``close()`` finalises them."""

    def __init__(self, out_dir: str | os.PathLike, fps: float, ply_every: int = 10, video: bool = True,
                 queue: int = 2) -> None:
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        for sub in ("depth", "disparity"):  # clouds/ appears with the first cloud (none without f*B)
            (self.out / sub).mkdir(exist_ok=True)
        self.ply_every = max(0, int(ply_every))
        self.video = VideoOut(self.out / VIDEO_NAME, fps) if video else None
        self.frames = 0
        self.written = {"png": 0, "npy": 0, "ply": 0}
        self.closed = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="headless-writer")
        self._pending: deque[Future] = deque()
        self._queue = max(1, int(queue))

    def _wait(self, keep: int) -> None:
        """Let at most ``keep`` writes stay pending; re-raises the first writing error."""
        while len(self._pending) > keep:
            self._pending.popleft().result()

    def add(self, t_us: int, composite: np.ndarray, depth_image: np.ndarray, disparity: np.ndarray,
            cloud_writer: Callable[[Path], None] | None = None) -> None:
        """Write one frame: composite -> video, coloured depth -> PNG, disparity -> NPY, and a PLY
        every ``ply_every`` frames by calling ``cloud_writer(path)`` (None: no cloud possible).
        The arrays must not be modified afterwards (they are written in the background)."""
        if self.closed:
            raise RuntimeError(f"{self.out}: outputs already closed")
        self._wait(self._queue - 1)
        cloud = cloud_writer if cloud_writer is not None and self.ply_every and self.frames % self.ply_every == 0 else None
        self._pending.append(self._pool.submit(self._write, t_us, composite, depth_image, disparity, cloud))
        self.frames += 1

    def _write(self, t_us: int, composite: np.ndarray, depth_image: np.ndarray, disparity: np.ndarray,
               cloud_writer: Callable[[Path], None] | None) -> None:
        name = str(int(t_us))
        if self.video is not None:
            self.video.write(composite)
        with atomic_path(self.out / "depth" / f"{name}.png") as tmp:
            # the temporary name keeps .png for OpenCV; light compression: ~40% faster, ~10% larger
            if not cv2.imwrite(str(tmp), depth_image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
                raise OSError(f"{self.out / 'depth'}: could not write {name}.png")
        self.written["png"] += 1
        with atomic_path(self.out / "disparity" / f"{name}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(disparity, np.float32))
        self.written["npy"] += 1
        if cloud_writer is not None:
            cloud_writer(self.out / "clouds" / f"{name}.ply")
            self.written["ply"] += 1

    def close(self, timings: dict) -> dict:
        """Finalise the video and write ``timings.json``; returns the paths written. Safe to call twice."""
        if self.closed:
            return {}
        self.closed = True
        error = None
        while self._pending:  # every queued frame is written before the video is finalised
            try:
                self._pending.popleft().result()
            except Exception as err:  # noqa: BLE001 - re-raised below, after finalising
                error = error or err
        self._pool.shutdown(wait=True)
        paths = {}
        if self.video is not None:
            video = self.video.close()
            if video is not None:
                paths["video"] = str(video)
        timings = dict(timings, outputs={"dir": str(self.out), **self.written,
                                         "video_frames": self.video.frames if self.video else 0})
        write_text_atomic(self.out / "timings.json", json.dumps(timings, indent=2, default=_json_default) + "\n")
        paths["timings"] = str(self.out / "timings.json")
        if error is not None:
            raise error
        return paths


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
