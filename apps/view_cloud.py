"""Look at a saved point cloud: an Open3D window, or a PNG rendered offscreen when there is no display.

    python -m apps.view_cloud FILE.ply [--png OUT.png] [--width W --height H] [--point-size S]
        [--color-by depth|file] [-q]

With a display and no --png it opens an interactive Open3D window (close it, or Ctrl-C, to
quit). With --png, or with no display, it renders the cloud offscreen (Open3D through EGL; a
numpy projection if Open3D cannot render, which it says) to OUT.png (default FILE.png),
checked for writability before the cloud is read. The view looks at the cloud's centre from
behind, turned 35 degrees about the vertical axis and 20 degrees from above, so its 3D shape
shows. Points are coloured by their depth (z, m), and the PNG carries the colour bar (m);
``--color-by file`` keeps the PLY's own colours (and draws no bar: their meaning is not
known). A bad file or option gets one line naming it and the problem, exit code 2; Ctrl-C
one line, exit code 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evstereo.errors import InputError, run_tool
from evstereo.fileio import check_writable
from evstereo.viz.cloud_viewer import cloud_picture, depth_colours, depth_range, load_cloud, show_cloud, write_image
from evstereo.viz.colors import LEGEND_WIDTH
from evstereo.viz.viewer import display_available


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m apps.view_cloud", description=__doc__.splitlines()[0])
    ap.add_argument("ply", metavar="FILE.ply", help="a point cloud (PLY, e.g. from apps.live_depth)")
    ap.add_argument("--png", metavar="OUT.png", default=None,
                    help="render to this PNG instead of opening a window (default with no display: FILE.png)")
    ap.add_argument("--width", type=int, default=1024, help="window / image width, px (default 1024)")
    ap.add_argument("--height", type=int, default=768, help="window / image height, px (default 768)")
    ap.add_argument("--point-size", type=float, default=2.0, help="point size in pixels (default 2)")
    ap.add_argument("--color-by", choices=("depth", "file"), default="depth",
                    help="depth: colour points by depth (z) with a colour bar in m on the PNG (default); "
                         "file: the colours stored in the PLY")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    return ap


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    info = print if not args.quiet else (lambda *a, **k: None)
    if args.width < LEGEND_WIDTH + 16 or args.height < 16:
        raise InputError(None, f"--width {args.width} --height {args.height}: need a width of at least "
                               f"{LEGEND_WIDTH + 16} and a height of at least 16 px")
    if args.point_size <= 0:
        raise InputError(None, f"--point-size {args.point_size:g}: must be positive")
    png = args.png
    if png is None and not display_available():
        png = str(Path(args.ply).with_suffix(".png"))
        info("note: no display (DISPLAY/WAYLAND_DISPLAY unset or unreachable): rendering to a PNG instead")
    if png is not None:
        check_writable(png)  # a folder, a read-only or full disk: fail before reading the cloud
    points, colors = load_cloud(args.ply)
    info(f"{args.ply}: {len(points):,} points{' with colours' if colors is not None else ''}")
    legend_range = depth_range(points) if args.color_by == "depth" else None
    if legend_range is not None:
        colors = depth_colours(points, *legend_range)
    elif args.color_by == "depth":
        info("note: no point lies in front of the camera (z > 0): the file's colours are shown")
    if png is None:
        try:
            show_cloud(points, colors, title=Path(args.ply).name, width=args.width, height=args.height,
                       point_size=args.point_size)
            return 0
        except (ImportError, RuntimeError) as exc:
            png = str(Path(args.ply).with_suffix(".png"))
            info(f"note: no Open3D window ({exc}): rendering to {png} instead")
            check_writable(png)
    image, renderer = cloud_picture(points, colors, args.width, args.height, args.point_size, legend_range)
    write_image(png, image)
    info(f"rendered with {renderer}: {png} ({args.width}x{args.height})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool(lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
