"""Look at a saved point cloud: an Open3D window, or a PNG rendered offscreen when there is no display.

    python -m apps.view_cloud FILE.ply [--png OUT.png] [--width W --height H] [--point-size S]

With a display and no --png it opens an interactive Open3D window (close it to quit). With
--png, or with no display, it renders the cloud offscreen (Open3D through EGL; a numpy
projection if Open3D cannot render, which it says) to OUT.png (default FILE.png). A bad file
gets one line naming it and the problem, and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evstereo.errors import InputError, print_error
from evstereo.viz.cloud_viewer import load_cloud, render_cloud, show_cloud, write_image
from evstereo.viz.viewer import display_available


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m apps.view_cloud", description=__doc__.splitlines()[0])
    ap.add_argument("ply", metavar="FILE.ply", help="a point cloud (PLY, e.g. from apps.live_depth)")
    ap.add_argument("--png", metavar="OUT.png", default=None,
                    help="render to this PNG instead of opening a window (default with no display: FILE.png)")
    ap.add_argument("--width", type=int, default=1024, help="window / image width (default 1024)")
    ap.add_argument("--height", type=int, default=768, help="window / image height (default 768)")
    ap.add_argument("--point-size", type=float, default=2.0, help="point size in pixels (default 2)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.width < 16 or args.height < 16:
        print("error: --width and --height must be at least 16", file=sys.stderr)
        return 2
    try:
        points, colors = load_cloud(args.ply)
    except InputError as exc:
        return print_error(exc)
    print(f"{args.ply}: {len(points):,} points{' with colours' if colors is not None else ''}")
    png = args.png
    if png is None and not display_available():
        png = str(Path(args.ply).with_suffix(".png"))
        print("note: no display (DISPLAY/WAYLAND_DISPLAY unset or unreachable): rendering to a PNG instead")
    if png is None:
        try:
            show_cloud(points, colors, title=Path(args.ply).name, width=args.width, height=args.height,
                       point_size=args.point_size)
            return 0
        except (ImportError, RuntimeError) as exc:
            png = str(Path(args.ply).with_suffix(".png"))
            print(f"note: no Open3D window ({exc}): rendering to {png} instead")
    image, renderer = render_cloud(points, colors, args.width, args.height, args.point_size)
    try:
        write_image(png, image)
    except OSError as exc:
        return print_error(exc)
    print(f"rendered with {renderer}: {png} ({args.width}x{args.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
