"""`evstereo SUBCOMMAND ...`: every tool of the project behind one command.

Each subcommand is the same program as its ``python -m`` form and takes the same options
(``evstereo train --config X`` is ``python -m apps.train --config X``); ``evstereo SUB --help``
shows them. The tools are imported only when chosen, so ``evstereo --help`` is instant.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line description); the order is the order of the workflow
# module names are relative to the package pair: apps/data_tools in a checkout,
# evstereo.apps/evstereo.data_tools when installed (see setup.py)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("data_tools.synth", "generate a synthetic stereo event recording in the MVSEC layout"),
    "inspect": ("data_tools.inspect", "summarise a recording (sensor, events per camera, GT, calibration)"),
    "convert": ("data_tools.convert", "convert text, npz, AEDAT4 or DSEC recordings to the MVSEC layout"),
    "prepare": ("data_tools.prepare", "cache training samples of recordings (resumable)"),
    "real-pair": ("data_tools.real_pair", "a stereo check with known disparity from one real camera's events"),
    "search": ("apps.search", "search an architecture (SpikeDHS supernet, bi-level)"),
    "train": ("apps.train", "train a spiking stereo network from a run config"),
    "evaluate": ("apps.evaluate", "score a model with the MVSEC metrics, beside SGBM"),
    "pareto": ("apps.pareto", "compare evaluated networks: error vs energy vs CPU time"),
    "adapt": ("apps.adapt", "fine-tune a model on your own rig's recordings, without ground truth"),
    "live": ("apps.live_depth", "live depth from a recorded event file (windows or headless)"),
    "view": ("apps.view_cloud", "look at a PLY point cloud (window or PNG)"),
    "bench": ("apps.bench", "run the benchmarks and print the table"),
    "demo": ("apps.demo", "generate a recording, inspect it and run live depth on it"),
}


def module_name(name: str) -> str:
    """The importable name of a subcommand's module, in whichever layout this file runs."""
    relative = SUBCOMMANDS[name][0]
    prefix = __package__.rpartition(".")[0] if __package__ else ""  # "" or "evstereo"
    return f"{prefix}.{relative}" if prefix else relative


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: evstereo SUBCOMMAND [options]   (evstereo SUBCOMMAND --help for its options)", "",
             "event-camera stereo depth with searched spiking neural networks", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from evstereo import __version__

        print(f"evstereo {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown subcommand {name!r}; choose one of {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(module_name(name))
    sys.argv[0] = f"evstereo {name}"
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
