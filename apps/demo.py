"""`make demo`: the main job end to end on a generated recording.

Today (before the stereo model lands) it generates a short synthetic MVSEC recording if none
exists, then inspects it and prepares its training samples; it grows into the live-depth demo.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_tools.inspect import format_summary
from evstereo.datasets import open_recording
from evstereo.datasets.prepared import prepare_recording
from evstereo.datasets.samples import SampleSpec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apps.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="data/demo", help="where the demo recording and outputs go")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    data = folder / "demo_data.hdf5"
    if not data.exists():
        from evstereo.simulation.recorder import synthesize

        print(f"generating a {args.seconds:g} s synthetic MVSEC recording in {folder} ...")
        synthesize(folder, "demo", args.seconds, args.seed)
    with open_recording(data) as rec:
        print(format_summary(rec.summary()))
    cache = prepare_recording(data, folder / "demo_sbt.h5", SampleSpec())
    print(f"\nprepared SBT training samples (5 bins, 50 ms windows): {cache}")
    print(f"recording: {data}\n(inspect it again with `python -m data_tools.inspect {data}`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
