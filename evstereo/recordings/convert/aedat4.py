"""``aedat4`` input: a DV/AEDAT4 file, read with the ``aedat`` package.

Its event stream, frames (image_raw) and IMU (g -> m/s^2, deg/s -> rad/s, as in MVSEC) go to
the left camera; the right camera gets an empty event dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evstereo.errors import InputError
from evstereo.recordings.convert.options import ConvertOptions, first_unsorted
from evstereo.recordings.convert.sink import Sink

STANDARD_GRAVITY = 9.80665


def _frame_to_gray(frame: dict) -> np.ndarray | None:
    import cv2

    px = np.asarray(frame["pixels"])
    fmt = frame.get("format")
    if fmt == "I;16" or px.dtype == np.uint16:
        px = (px >> 8).astype(np.uint8)
    if px.ndim == 3:
        code = cv2.COLOR_RGBA2GRAY if px.shape[2] == 4 else cv2.COLOR_RGB2GRAY
        px = cv2.cvtColor(px, code)
    return px.astype(np.uint8, copy=False)


def convert_aedat4(inputs: list[Path], out: Path, opts: ConvertOptions) -> dict:
    if len(inputs) != 1:
        raise InputError(None, f"the aedat4 format takes one file, not {len(inputs)}")
    path = inputs[0]
    try:
        import aedat
    except ImportError:
        raise InputError(path, "needs the 'aedat' package to be read (pip install aedat)") from None
    try:
        decoder = aedat.Decoder(str(path))
        streams = decoder.id_to_stream()
    except Exception as exc:
        raise InputError(path, f"is not a readable AEDAT4 file (truncated or corrupt?): {exc}") from None
    ev_ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
    if not ev_ids:
        raise InputError(path, "holds no event stream")
    ev_id = ev_ids[0]
    if opts.sensor:
        sensor, source = opts.sensor, "given with --sensor"
    else:
        s = streams[ev_id]
        sensor, source = (int(s["width"]), int(s["height"])), "of the file's event stream"
    frame_ids = [i for i, s in streams.items() if s.get("type") == "frame"]
    imu_ids = [i for i, s in streams.items() if s.get("type") == "imus"]
    dx, dy = opts.left_offset
    with Sink("aedat4", inputs, out, gt=False, sensor=sensor, sensor_source=source, opts=opts) as sink:
        if len(ev_ids) > 1:
            sink.notes.append(f"the file has {len(ev_ids)} event streams; only stream {ev_id} was converted")
        sink.notes.append("AEDAT4 holds one camera: its events, frames and IMU went to the left camera; "
                          "the right camera's event dataset is empty")
        sink.mono_hint = " (an AEDAT4 file holds one camera)"
        buf: list[np.ndarray] = []
        held: list[np.ndarray] = []
        buffered = 0
        count = 0
        last_t = None
        skipped_frames = 0
        bar = opts.bar(None, f"reading {path.name}", "ev")

        def flush() -> None:
            nonlocal buf, buffered
            if not buf:
                return
            ev = np.concatenate(buf)
            buf, buffered = [], 0
            x, y = ev["x"].astype(np.int64) + dx, ev["y"].astype(np.int64) + dy
            sink.check_coords("left", x, y, path)
            sink.add_events("left", x, y, ev["t"].astype(np.float64) / 1e6, ev["on"].astype(np.int8))

        try:
            for packet in decoder:
                sid = packet["stream_id"]
                if "events" in packet and sid == ev_id:
                    ev = packet["events"]
                    if len(ev) == 0:
                        continue
                    t = ev["t"].astype(np.int64)
                    i = first_unsorted(t)
                    if last_t is not None and t[0] < last_t:
                        i = 0
                    if i is not None and not opts.sort:
                        raise InputError(path, f"event timestamps are not sorted: event {count + i} (t={int(t[i])} us) is "
                                               "earlier than the one before it; pass --sort to sort them in memory")
                    last_t = int(t[-1]) if last_t is None else max(last_t, int(t[-1]))
                    count += len(ev)
                    bar.update(len(ev))
                    if opts.sort:
                        held.append(ev)
                        continue
                    buf.append(ev)
                    buffered += len(ev)
                    if buffered >= opts.chunk:
                        flush()
                elif "frame" in packet and opts.frames and sid == (frame_ids[0] if frame_ids else None):
                    frame = packet["frame"]
                    img = _frame_to_gray(frame)
                    if img.shape != (sensor[1], sensor[0]):
                        skipped_frames += 1
                        continue
                    sink.writer.add_images("left", img[None], np.array([frame["t"] / 1e6]))
                    sink.images += 1
                elif "imus" in packet and opts.imu and sid == (imu_ids[0] if imu_ids else None):
                    imu = packet["imus"]
                    rows = np.stack([imu["accelerometer_x"], imu["accelerometer_y"], imu["accelerometer_z"],
                                     imu["gyroscope_x"], imu["gyroscope_y"], imu["gyroscope_z"]], 1).astype(np.float64)
                    rows[:, :3] *= STANDARD_GRAVITY  # g -> m/s^2 (ROS sensor_msgs/Imu, as in MVSEC)
                    rows[:, 3:] = np.deg2rad(rows[:, 3:])  # deg/s -> rad/s
                    sink.writer.add_imu("left", rows, imu["t"].astype(np.float64) / 1e6)
                    sink.imu += len(imu)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(path, f"cannot be decoded past event {count} (truncated or corrupt?): {exc}") from None
        finally:
            bar.close()
        if held:
            ev = np.concatenate(held)
            ev = ev[np.argsort(ev["t"], kind="stable")]
            for s in range(0, len(ev), opts.chunk):
                buf.append(ev[s : s + opts.chunk])
                flush()
        flush()
        if skipped_frames:
            sink.notes.append(f"{skipped_frames} frames whose size differs from the sensor were skipped")
        if sink.images:
            sink.notes.append(f"{sink.images} APS frames written to davis/left/image_raw")
        if sink.imu:
            sink.notes.append(f"{sink.imu} IMU samples written to davis/left/imu (m/s^2, rad/s)")
        sink.finish()
    decoder = None
    return sink.summary()
