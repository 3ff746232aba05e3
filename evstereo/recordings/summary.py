"""The printable form of :meth:`Recording.summary` (``data_tools.inspect`` and the demo show it)."""

from __future__ import annotations


def format_summary(s: dict) -> str:
    """Sensor, duration, events per camera, the stereo-order check, GT and calibration as text."""
    lines = [
        f"{s['path']}  ({s['format']})",
        f"  sensor        {s['sensor']['width']} x {s['sensor']['height']} px",
        f"  duration      {s['duration_s']:.3f} s",
    ]
    for cam, c in s["cameras"].items():
        span = ""
        if c["events"]:
            span = f"   t {c['t_first_us'] / 1e6:.6f} .. {c['t_last_us'] / 1e6:.6f} s"
        lines.append(f"  {cam:<6} events {c['events']:>12,d}   {c['rate_mev_s']:.3f} M ev/s{span}"
                     + (f"   {c['events_per_pixel_per_window']:.3g} per pixel in 50 ms" if c["events"] else ""))
    sh = s.get("stereo_shift")
    if sh is not None:
        if sh["clear"]:
            order = ("as expected" if sh["shift_px"] > 0 else "almost no disparity (a far scene or a short baseline)"
                     if sh["shift_px"] == 0 else "left and right look SWAPPED")
            lines.append(f"  stereo        left events match the right ones {sh['shift_px']:+d} px to the right "
                         f"(correlation {sh['score']:.2f}): {order}")
        else:
            lines.append(f"  stereo        no clear horizontal match in the middle 50 ms window "
                         f"(best {sh['shift_px']:+d} px, correlation {sh['score']:.2f})")
    if "typical_disparity_px" in s:
        d = s["typical_disparity_px"]
        lines.append(f"  disparity     typical {d:g} px (where the cameras' event images correlate best, 12 windows)"
                     if d is not None else "  disparity     no typical value (no clear match in enough windows)")
    if s["gt_frames"]:
        lines.append(f"  ground truth  {s['gt_frames']} depth frames at {s['gt_rate_hz']:.1f} Hz")
    else:
        lines.append("  ground truth  none")
    cal = s.get("calibration")
    if cal:
        lines.append(f"  calibration   {cal['distortion']} distortion, f = {cal['focal_px']:.3f} px, "
                     f"fB = {cal['fB_px_m']:.4f} px*m, baseline = {cal['baseline_m']:.4f} m")
        lines.append(f"                from {cal['source']}")
    else:
        lines.append("  calibration   none (events used as stored)")
    return "\n".join(lines)
