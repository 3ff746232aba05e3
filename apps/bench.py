"""`python -m apps.bench [--quick]`: runs the benchmarks and prints the table (Markdown).

Each row is measured in this run; ratios compare against baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from evstereo.benchmarks import MODULES, Row
from evstereo.errors import run_tool
from evstereo.fileio import check_writable, write_text_atomic


def format_table(rows: list[Row]) -> str:
    out = ["| benchmark | implementation | value | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        value = f"{r.value:.4g} {r.unit}"
        name = r.name + (f" ({r.note})" if r.note else "")
        out.append(f"| {r.group} | {name} | {value} | {r.ratio} | {r.target} | {met} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apps.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats")
    ap.add_argument("--only", nargs="*", choices=MODULES, help="run only these benchmark modules")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of the Markdown table")
    ap.add_argument("--out", metavar="FILE", help="also write the rows to this JSON file")
    ap.add_argument("-q", "--quiet", action="store_true", help="no 'running ...' progress lines")
    ap.add_argument("--details", metavar="FILE",
                    help="write the longer results (e.g. per-layer energy tables) to this Markdown file")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                    help="weights for a network of the models benchmark (reference or fast) instead of "
                         "evstereo/checkpoints/NAME.pt, e.g. reference=runs/reference_synth/model.pt")
    args = ap.parse_args(argv)
    return run_tool(lambda: run(ap, args))


def run(ap: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    for target in (args.out, args.details):
        if target:
            check_writable(target)  # before minutes of measuring
    if args.checkpoint:
        from evstereo.benchmarks.models import CHECKPOINTS_ENV, CONFIGS

        for item in args.checkpoint:
            name, _, path = item.partition("=")
            if name not in CONFIGS or not Path(path).is_file():
                ap.error(f"--checkpoint {item}: need reference=PATH or fast=PATH with an existing file")
        os.environ[CHECKPOINTS_ENV] = ",".join(args.checkpoint)
    if args.details:
        write_text_atomic(args.details, "# Benchmark details\n\n")  # modules append their sections
        os.environ["EVSTEREO_BENCH_DETAILS"] = str(Path(args.details).resolve())
    rows: list[Row] = []
    for name in args.only or MODULES:
        mod = importlib.import_module(f"evstereo.benchmarks.{name}")
        if not args.quiet:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += mod.run(args.quick)
    print(json.dumps([r.as_dict() for r in rows], indent=2) if args.json else format_table(rows))
    if args.details and not args.quiet:
        print(f"details: {args.details}", file=sys.stderr)
    if args.out:
        write_text_atomic(args.out, json.dumps([r.as_dict() for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
