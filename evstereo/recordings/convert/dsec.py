"""``dsec`` input: a DSEC sequence folder (read with :class:`evstereo.recordings.dsec.DSECRecording`).

Events are rectified with DSEC's maps (the output needs no rectification), the disparity GT
becomes depth_image_rect = fB / d, and the camchain file describes the rectified pair
(distortion 'none', R = I, P with f and fB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evstereo.errors import InputError
from evstereo.geometry import CAMERAS
from evstereo.recordings.convert.options import ConvertOptions
from evstereo.recordings.convert.sink import Sink


def convert_dsec(inputs: list[Path], out: Path, opts: ConvertOptions) -> dict:
    from evstereo.recordings.dsec import DSECRecording  # cv2: imported only when needed

    if len(inputs) != 1:
        raise InputError(None, f"the dsec format takes one sequence folder, not {len(inputs)}")
    with DSECRecording(inputs[0]) as rec:
        has_gt = rec.has_gt
        if has_gt and rec.fB is None:
            raise InputError(rec.path / "calibration" / "cam_to_cam.yaml",
                             "is missing, so the disparity ground truth cannot be converted to depth")
        sensor = (rec.width, rec.height)
        with Sink("dsec", inputs, out, gt=has_gt, sensor=sensor, sensor_source="of the DSEC sequence", opts=opts) as sink:
            raw_total = 0
            for cam in CAMERAS:
                bar = opts.bar(rec.num_events(cam), f"{cam} events", "ev")
                try:
                    for ev, n_raw in rec.iter_events(cam, opts.chunk):
                        raw_total += n_raw
                        sink.add_events(cam, ev.x, ev.y, ev.t.astype(np.float64) / 1e6, ev.p)
                        bar.update(n_raw)
                finally:
                    bar.close()
            kept = sum(sink.stats[c]["events"] for c in CAMERAS)
            sink.notes.append(f"events rectified with DSEC's rectify_map.h5: kept {kept} of {raw_total} "
                              "(the others fall outside the rectified image)")
            if has_gt:
                ts = rec.gt_timestamps()
                bar = opts.bar(len(ts), "disparity GT", "frame")
                try:
                    for i in range(len(ts)):
                        depth = rec.depth(i)
                        sink.writer.add_depth("left", "rect", depth[None], np.array([ts[i] / 1e6]))
                        sink.gt_frames += 1
                        bar.update(1)
                finally:
                    bar.close()
                sink.notes.append(f"{len(ts)} disparity maps written as depth_image_rect = fB / d (fB = {rec.fB:.6g} px*m)")
            else:
                sink.notes.append("the sequence has no disparity ground truth (no disparity/event folder)")
            sink.calibration = rec.calibration
            sink.finish()
    return sink.summary()
