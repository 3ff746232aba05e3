"""`python -m apps.pareto NAME=results.json [...] --out pareto.png`: compare networks on a Pareto plot.

Each argument names a network and the ``apps.evaluate`` results.json of its run on the same
recording. Prints one line per network (mean disparity error, energy per frame, CPU time per
frame, whether it is on the Pareto front over the three) and writes the picture
(evstereo.viz.pareto_plot). A missing or wrong results file is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from evstereo.errors import InputError, run_tool
from evstereo.viz.pareto_plot import pareto_front, plot_pareto, read_point


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apps.pareto", description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", metavar="NAME=results.json")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    return run_tool(lambda: pareto(args))


def pareto(args: argparse.Namespace) -> int:
    points = []
    for item in args.results:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InputError(None, f"{item!r}: give NAME=path/to/results.json")
        points.append(read_point(name, path))
    front = {p.name for p in pareto_front(points)}
    for p in sorted(points, key=lambda p: p.error_px):
        print(f"{p.name}: {p.error_px:.3f} px, {p.energy_mj:.3f} mJ/frame, {p.forward_ms:.1f} ms/frame"
              + ("  (Pareto front)" if p.name in front else ""))
    print(f"wrote {plot_pareto(points, args.out, args.title)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
