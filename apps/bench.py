"""`python -m apps.bench [--quick]`: runs the benchmarks and prints the table (Markdown).

Each row is measured in this run; ratios compare against baselines measured in the same run.
The measurements live in the repository's top-level ``benchmarks/`` folder (not installed, like
``tests/``), so this needs a checkout; its root is put on the path when it is missing there.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

from evstereo.errors import InputError, run_tool
from evstereo.fileio import check_writable, write_text_atomic

CHECKOUT = Path(__file__).resolve().parents[1]


def import_benchmarks() -> ModuleType:
    """The ``benchmarks`` package of the checkout; InputError when there is none (an installed wheel)."""
    if (CHECKOUT / "benchmarks" / "__init__.py").is_file() and str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    try:
        return importlib.import_module("benchmarks")
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks":
            raise
        raise InputError(None, "the benchmarks are in the repository's benchmarks/ folder, which is not installed: "
                               "run python -m apps.bench from a checkout (pip install -e '.[bench]')") from None


def format_table(rows: list) -> str:
    out = ["| benchmark | implementation | value | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        value = f"{r.value:.4g} {r.unit}"
        name = r.name + (f" ({r.note})" if r.note else "")
        out.append(f"| {r.group} | {name} | {value} | {r.ratio} | {r.target} | {met} |")
    return "\n".join(out)


def build_parser(modules: list[str], networks: tuple[str, ...]) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m apps.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats")
    ap.add_argument("--only", nargs="*", choices=modules, help="run only these benchmark modules")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON instead of the Markdown table")
    ap.add_argument("--out", metavar="FILE", help="also write the rows to this JSON file")
    ap.add_argument("-q", "--quiet", action="store_true", help="no 'running ...' progress lines")
    ap.add_argument("--details", metavar="FILE",
                    help="write the longer results (e.g. per-layer energy tables) to this Markdown file")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                    help=f"weights for a network ({' or '.join(networks)}) instead of evstereo/checkpoints/NAME.pt, "
                         "e.g. reference=runs/reference_synth/model.pt")
    return ap


def main(argv: list[str] | None = None) -> int:
    return run_tool(lambda: _run(argv))


def _run(argv: list[str] | None) -> int:
    bench = import_benchmarks()
    from benchmarks.models import NETWORKS

    ap = build_parser(bench.MODULES, NETWORKS)
    args = ap.parse_args(argv)
    for target in (args.out, args.details):
        if target:
            check_writable(target)  # before minutes of measuring
    options = bench.BenchOptions()
    for item in args.checkpoint:
        name, _, path = item.partition("=")
        if name not in NETWORKS or not Path(path).is_file():
            ap.error(f"--checkpoint {item}: need {'=PATH or '.join(NETWORKS)}=PATH with an existing file")
        options.checkpoints[name] = Path(path)
    if args.details:
        write_text_atomic(args.details, "# Benchmark details\n\n")  # modules append their sections
        options.details = Path(args.details).resolve()
    rows = []
    for name in args.only or bench.MODULES:
        mod = importlib.import_module(f"benchmarks.{name}")
        if not args.quiet:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += mod.run(args.quick, options)
    print(json.dumps([r.as_dict() for r in rows], indent=2) if args.json else format_table(rows))
    if args.details and not args.quiet:
        print(f"details: {args.details}", file=sys.stderr)
    if args.out:
        write_text_atomic(args.out, json.dumps([r.as_dict() for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
