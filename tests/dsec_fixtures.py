"""Small sequences in the exact DSEC layout, for tests.

``write_dsec_sequence(root)`` writes::

    root/NAME/events/{left,right}/events.h5       events/{x,y,t,p} (uint16, uint16, uint32, uint8),
                                                  t_offset (int64 scalar), ms_to_idx (uint64);
                                                  Blosc-compressed through hdf5plugin
    root/NAME/events/{left,right}/rectify_map.h5  rectify_map (H, W, 2) float32
    root/NAME/disparity/event/000000.png ...      uint16 disparity * 256, 0 invalid (DSEC names: even numbers)
    root/NAME/disparity/timestamps.txt            absolute us, one per PNG
    root/NAME/calibration/cam_to_cam.yaml         intrinsics, extrinsics, disparity_to_depth (cams_03, cams_12)

and returns everything it wrote (raw events with relative t, maps, disparities, Q, fB) so
tests can compare a reader against a brute-force computation.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import hdf5plugin
import numpy as np
import yaml

HEIGHT, WIDTH = 480, 640
FOCAL, BASELINE = 569.7632987676102, 0.5928
CX, CY = 335.0999870300293, 221.23667526245117
T_OFFSET = 49_599_300_523  # us, like DSEC's top-of-day offsets


def ms_to_idx(t: np.ndarray) -> np.ndarray:
    """DSEC's index: entry k is the first event with t >= k ms (t relative, us)."""
    n_ms = int(t[-1]) // 1000 + 1 if len(t) else 1
    return np.searchsorted(t, np.arange(n_ms, dtype=np.int64) * 1000, side="left").astype(np.uint64)


def write_events_h5(path: Path, x, y, t, p, t_offset: int = T_OFFSET, index: np.ndarray | None = None,
                    chunk: int = 512, skip: tuple[str, ...] = ()) -> None:
    """One DSEC events.h5 (``skip`` leaves datasets out, for bad-input tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blosc = hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE)
    data = {"x": np.asarray(x, np.uint16), "y": np.asarray(y, np.uint16),
            "t": np.asarray(t, np.uint32), "p": np.asarray(p, np.uint8)}
    with h5py.File(path, "w") as f:
        for name, arr in data.items():
            if name in skip:
                continue
            f.create_dataset(f"events/{name}", data=arr, chunks=(max(1, min(chunk, len(arr))),) if len(arr) else None,
                             **(blosc if len(arr) else {}))
        if "ms_to_idx" not in skip:
            f.create_dataset("ms_to_idx", data=ms_to_idx(data["t"].astype(np.int64)) if index is None else index,
                             **blosc)
        if "t_offset" not in skip:
            f.create_dataset("t_offset", data=np.int64(t_offset))


def rectify_map(camera: str, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A smooth, non-trivial raw -> rectified map; some pixels land outside the image."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    if camera == "left":
        xr = xs + 1.7 * np.sin(2 * np.pi * ys / height) - 2.3
        yr = (ys - CY) * 1.012 + CY + 0.6
    else:
        xr = (xs - CX) * 0.995 + CX + 3.4
        yr = ys - 1.4 + 0.8 * np.cos(2 * np.pi * xs / width)
    return np.stack([xr, yr], -1).astype(np.float32)


def cam_to_cam(height: int = HEIGHT, width: int = WIDTH, focal: float = FOCAL, baseline: float = BASELINE) -> dict:
    """The structure of DSEC's calibration/cam_to_cam.yaml (values made up, Q consistent with f and B)."""
    def intr(fx, cx, cy, dist):
        return {"camera_matrix": [fx, fx, cx, cy], "distortion_coeffs": dist, "distortion_model": "radtan",
                "model": "pinhole", "resolution": [width, height]}

    Q = [[1.0, 0.0, 0.0, -CX], [0.0, 1.0, 0.0, -CY], [0.0, 0.0, 0.0, focal], [0.0, 0.0, 1.0 / baseline, 0.0]]
    eye = np.eye(3).tolist()
    return {
        "intrinsics": {
            "cam0": intr(555.6, 342.3, 225.9, [-0.08, 0.14, 0.001, 0.0006]),
            "cam1": intr(1150.8, 724.4, 569.1, [-0.39, 0.16, 0.0, 0.0]),
            "cam2": intr(1152.5, 720.0, 538.0, [-0.40, 0.17, 0.0, 0.0]),
            "cam3": intr(553.4, 336.6, 222.3, [-0.09, 0.15, 0.0, 0.0]),
            "camRect0": {"camera_matrix": [focal, focal, CX, CY], "resolution": [width, height]},
            "camRect1": {"camera_matrix": [1150.0, 1150.0, 700.0, 540.0], "resolution": [1440, 1080]},
            "camRect2": {"camera_matrix": [1150.0, 1150.0, 700.0, 540.0], "resolution": [1440, 1080]},
            "camRect3": {"camera_matrix": [focal, focal, CX, CY], "resolution": [width, height]},
        },
        "extrinsics": {
            "T_10": np.eye(4).tolist(), "T_21": np.eye(4).tolist(), "T_32": np.eye(4).tolist(),
            "R_rect0": eye, "R_rect1": eye, "R_rect2": eye, "R_rect3": eye,
        },
        "disparity_to_depth": {
            "cams_03": Q,
            "cams_12": [[1.0, 0.0, 0.0, -700.0], [0.0, 1.0, 0.0, -540.0], [0.0, 0.0, 0.0, 1150.0],
                        [0.0, 0.0, 1.0 / 0.51, 0.0]],
        },
    }


def random_events(rng: np.random.Generator, n: int, duration_us: int, height: int = HEIGHT, width: int = WIDTH):
    """Sorted events with repeated timestamps and some exactly on millisecond edges."""
    t = np.sort(np.concatenate([rng.integers(0, duration_us, n - n // 10),
                                (rng.integers(0, duration_us // 1000, n // 10) * 1000)]))
    x = rng.integers(0, width, n)
    y = rng.integers(0, height, n)
    p = rng.integers(0, 2, n)
    return {"x": x.astype(np.int64), "y": y.astype(np.int64), "t": t.astype(np.int64), "p": p.astype(np.int64)}


def write_dsec_sequence(root: str | Path, name: str = "zurich_city_00_a", n_events: tuple[int, int] = (6000, 5000),
                        duration_us: int = 300_000, n_gt: int = 4, seed: int = 0, t_offset: int = T_OFFSET,
                        gt: bool = True) -> dict:
    """Write one DSEC-layout sequence folder under ``root``; return what was written."""
    rng = np.random.default_rng(seed)
    seq = Path(root) / name
    events, luts = {}, {}
    for cam, n in zip(("left", "right"), n_events):
        ev = random_events(rng, n, duration_us)
        folder = seq / "events" / cam
        write_events_h5(folder / "events.h5", ev["x"], ev["y"], ev["t"], ev["p"], t_offset)
        lut = rectify_map(cam)
        with h5py.File(folder / "rectify_map.h5", "w") as f:
            f.create_dataset("rectify_map", data=lut)
        events[cam], luts[cam] = ev, lut

    calib = cam_to_cam()
    (seq / "calibration").mkdir(parents=True, exist_ok=True)
    (seq / "calibration" / "cam_to_cam.yaml").write_text(yaml.safe_dump(calib, sort_keys=False))

    disparities, stamps, pngs = [], np.zeros(0, np.int64), []
    if gt:
        disp_dir = seq / "disparity" / "event"
        disp_dir.mkdir(parents=True, exist_ok=True)
        stamps = t_offset + np.linspace(20_000, duration_us - 20_000, n_gt).astype(np.int64)
        for i in range(n_gt):
            raw = rng.integers(256, 80 * 256, (HEIGHT, WIDTH)).astype(np.uint16)
            raw[rng.random((HEIGHT, WIDTH)) < 0.4] = 0
            png = disp_dir / f"{2 * i:06d}.png"
            assert cv2.imwrite(str(png), raw)
            disp = raw.astype(np.float32) / 256
            disp[raw == 0] = np.nan
            disparities.append(disp)
            pngs.append(png)
        np.savetxt(seq / "disparity" / "timestamps.txt", stamps, fmt="%d")
    return {
        "path": seq, "events": events, "luts": luts, "t_offset": t_offset, "gt_timestamps": stamps,
        "disparities": disparities, "pngs": pngs, "focal": FOCAL, "baseline": BASELINE, "fB": FOCAL * BASELINE,
        "cx": CX, "cy": CY, "height": HEIGHT, "width": WIDTH, "duration_us": duration_us,
    }


def brute_force_window(ev: dict, lut: np.ndarray, t_offset: int, t0: int, t1: int):
    """Expected rectified events of (t0, t1] (absolute us): rectify, round, drop out-of-image."""
    t_abs = ev["t"] + t_offset
    sel = (t_abs > t0) & (t_abs <= t1)
    x, y, t, p = ev["x"][sel], ev["y"][sel], t_abs[sel], ev["p"][sel]
    if lut is None:
        return x, y, t, np.where(p > 0, 1, -1)
    xr = np.floor(lut[y, x, 0].astype(np.float64) + 0.5)
    yr = np.floor(lut[y, x, 1].astype(np.float64) + 0.5)
    h, w = lut.shape[:2]
    ok = (xr >= 0) & (yr >= 0) & (xr < w) & (yr < h)
    return xr[ok].astype(np.int64), yr[ok].astype(np.int64), t[ok], np.where(p[ok] > 0, 1, -1)
