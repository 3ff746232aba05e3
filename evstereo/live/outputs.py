"""Output writers of a live session with no window (``apps.live_depth --headless``, ``evstereo.live``).

Into ``out/`` (``<t_us>`` is the window's end in the recording's microseconds, zero-padded to
16 digits by ``frame_stem`` so that names sort in time order):

- ``live_depth.mp4``: the composite view (``evstereo.viz.viewer.compose_view``), one video
  frame per depth frame at the recording's frame rate. It is written under a temporary
  ``.mp4`` name and renamed by ``close()``, which also runs when the run is interrupted or
  the input turns out corrupt, so the frames written so far always end up playable. OpenCV's
  writer fails silently (a full disk, a missing codec), so ``close()`` reopens the file and
  counts its frames first; a video that does not play back whole is removed, not published,
  and the error goes into timings.json and is raised.
- ``depth/<t_us>.png``: colour-coded depth (inverse-depth colours of ``colorize_depth``) with
  its colour bar (m) on the right; without calibration (f*B unknown) the pictures show
  disparity instead and go to ``disparity/<t_us>.png`` (colour bar in px).
- ``disparity_npy/<t_us>.npy``: the raw disparity, float32 (H, W) px, NaN invalid, always
  (with or without calibration: the folder of arrays never moves), every pixel whatever its
  confidence; ``confidence_npy/<t_us>.npy`` its confidence, float32 (H, W) in [0, 1].
- ``clouds/<t_us>.ply``: the coloured point cloud every ``ply_every`` frames (needs f*B).
- ``timings.json``: written atomically by ``close()`` from what the caller passes.

Every file goes to a temporary name first and is renamed, so none is ever half-written.
The encoding and writing run on one background thread (OpenCV and numpy release the GIL),
overlapping the next frame's model; at most ``queue`` frames wait, and ``close()`` finishes
them all first. A writing error is raised by the next ``add()`` or by ``close()``.
"""

from __future__ import annotations

import errno
import json
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from evstereo.fileio import atomic_path, check_writable, publish, temp_path, write_text_atomic

VIDEO_NAME = "live_depth.mp4"
ARRAY_DIR = "disparity_npy"
CONFIDENCE_DIR = "confidence_npy"
DEPTH_DIR, DISPARITY_DIR = "depth", "disparity"  # the pictures' folder: what they show


def frame_stem(t_us: int) -> str:
    """A frame's file name (without suffix) from its time in us: zero-padded to 16 digits, so
    names sort in time order (16 digits hold MVSEC's absolute Unix microseconds)."""
    return f"{int(t_us):016d}"


def playable_frames(path: str | os.PathLike) -> int:
    """How many frames a video file plays back (0 when it does not open or decode)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened() or not cap.read()[0]:
            return 0
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


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
            self._tmp = temp_path(self.path)  # ends in .mp4: OpenCV picks the container by the suffix
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
        """Finish the file (the MP4 index is written on release), check that it plays back every
        frame written, and give it its final name. A video that does not is removed and an
        OSError (EIO, naming the final path) raised: OpenCV's writer reports no failure itself."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        readable = playable_frames(self._tmp)
        if readable != self.frames:
            self._tmp.unlink(missing_ok=True)
            raise OSError(errno.EIO, f"the video OpenCV wrote plays back {readable} of its {self.frames} frames "
                                     "(disk full? codec?); it was not kept", str(self.path))
        publish(self._tmp, self.path)
        return self.path


class HeadlessOutputs:
    """Writes one run's outputs into ``out_dir`` (see the module doc); ``close()`` finalises them.

    ``image_dir`` is ``DEPTH_DIR`` or ``DISPARITY_DIR`` (what the pictures show); ``legend``, a
    colour bar as tall as the pictures, is put on the right of each one.
    """

    def __init__(self, out_dir: str | os.PathLike, fps: float, ply_every: int = 10, video: bool = True,
                 queue: int = 2, image_dir: str = DEPTH_DIR, legend: np.ndarray | None = None) -> None:
        self.out = check_writable(out_dir, folder=True)
        self.image_dir, self.legend = image_dir, legend
        for sub in (image_dir, ARRAY_DIR):  # clouds/ appears with the first cloud (none without f*B)
            (self.out / sub).mkdir(exist_ok=True)
        self.ply_every = max(0, int(ply_every))
        self.video = VideoOut(self.out / VIDEO_NAME, fps) if video else None
        self.frames = 0
        self.written = {"png": 0, "npy": 0, "confidence_npy": 0, "ply": 0}
        self.closed = False
        self.timings: dict = {}  # what close() wrote to timings.json
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="headless-writer")
        self._pending: deque[Future] = deque()
        self._queue = max(1, int(queue))

    def _wait(self, keep: int) -> None:
        """Let at most ``keep`` writes stay pending; re-raises the first writing error."""
        while len(self._pending) > keep:
            self._pending.popleft().result()

    def add(self, t_us: int, composite: np.ndarray, depth_image: np.ndarray, disparity: np.ndarray,
            cloud_writer: Callable[[Path], None] | None = None, confidence: np.ndarray | None = None) -> None:
        """Write one frame: composite -> video, coloured depth -> PNG, disparity (and its
        ``confidence``) -> NPY, and a PLY every ``ply_every`` frames by calling
        ``cloud_writer(path)`` (None: no cloud possible). The arrays must not be modified
        afterwards (they are written in the background)."""
        if self.closed:
            raise RuntimeError(f"{self.out}: outputs already closed")
        self._wait(self._queue - 1)
        cloud = cloud_writer if cloud_writer is not None and self.ply_every and self.frames % self.ply_every == 0 else None
        self._pending.append(self._pool.submit(self._write, t_us, composite, depth_image, disparity, cloud,
                                               confidence))
        self.frames += 1

    def _write(self, t_us: int, composite: np.ndarray, depth_image: np.ndarray, disparity: np.ndarray,
               cloud_writer: Callable[[Path], None] | None, confidence: np.ndarray | None) -> None:
        name = frame_stem(t_us)
        if self.video is not None:
            self.video.write(composite)
        if self.legend is not None:
            depth_image = np.hstack([depth_image, self.legend])
        png = self.out / self.image_dir / f"{name}.png"
        with atomic_path(png) as tmp:
            # the temporary name keeps .png for OpenCV; light compression: ~40% faster, ~10% larger
            if not cv2.imwrite(str(tmp), depth_image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
                raise OSError(errno.EIO, "OpenCV could not write this image", str(png))
        self.written["png"] += 1
        with atomic_path(self.out / ARRAY_DIR / f"{name}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(disparity, np.float32))
        self.written["npy"] += 1
        if confidence is not None:
            (self.out / CONFIDENCE_DIR).mkdir(exist_ok=True)
            with atomic_path(self.out / CONFIDENCE_DIR / f"{name}.npy") as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, np.asarray(confidence, np.float32))
            self.written["confidence_npy"] += 1
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
        outputs = {"dir": str(self.out), **self.written, "video_frames": self.video.frames if self.video else 0}
        if self.video is not None:
            try:
                video = self.video.close()
                if video is not None:
                    paths["video"] = str(video)
            except OSError as err:
                outputs.update(video_frames=0, video_error=str(err))
                error = error or err
        self.timings = timings = dict(timings, outputs=outputs)
        if error is not None and timings.get("error") is None:  # the run went well, its outputs did not
            timings.update(status="output error", error=str(error))
        write_text_atomic(self.out / "timings.json", report_json(timings) + "\n")
        paths["timings"] = str(self.out / "timings.json")
        if error is not None:
            raise error
        return paths


def report_json(report: dict) -> str:
    """A run's report as indented JSON (numpy numbers and paths as plain values)."""
    return json.dumps(report, indent=2, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
