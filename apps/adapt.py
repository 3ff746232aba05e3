"""`python -m apps.adapt --checkpoint CKPT --data RECORDING... --out DIR`: adapt a network to your own rig, without ground truth.

Fine-tunes a trained network (an evstereo checkpoint; default: the shipped one) on unlabelled
stereo recordings (anything ``open_recording`` reads; ground truth in them is never read) with
a self-supervised loss (``evstereo.training.selfsup``): the right camera's blurred event image
warped by the predicted disparity must match the left one's, disparity is smooth away from
image edges, and the two views' disparities agree. Windows come at regular times where both
cameras have events (``evstereo.datasets.unlabelled``), built for the network's own input.

Options set entries of the run config (``--config``, default configs/adapt/default.yaml:
``module`` loss weights and lr, ``data`` windows, crop and batches, ``trainer``, ``checkpoint``);
``section.key=value`` overrides change any entry (e.g. ``module.smoothness=0.1``), and the
options given win over both. Writes, as apps.train does: DIR/checkpoints/ (last.ckpt to resume
from: run the same command again after an interruption; --no-resume starts afresh, and
epochNNN.ckpt), DIR/csv/metrics.csv and DIR/tb logs, DIR/plots/curves.png, and at the end
DIR/model.pt, the adapted network in the format every tool's --checkpoint reads. Bad input is
one line and exit status 2; Ctrl-C stops it with exit status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import re
import sys
from pathlib import Path

from evstereo.datasets.scaling import parse_scale
from evstereo.datasets.unlabelled import UnlabelledDataModule
from evstereo.devices import add_device_option, resolve_device
from evstereo.errors import InputError, run_tool
from evstereo.fileio import check_writable
from evstereo.models import load_checkpoint, save_checkpoint, shipped_checkpoint
from evstereo.training.runner import INTERRUPTED, SECTIONS, config_section, fit, load_run_config, say, seed_run
from evstereo.training.selfsup import AdaptModule

from .train import write_plots  # apps.train in a checkout, evstereo.apps.train installed

DEFAULT_CONFIG = "configs/adapt/default.yaml"
_OVERRIDE = re.compile(rf"^({'|'.join(SECTIONS)})(\.[\w-]+)*=")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m apps.adapt", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", metavar="CKPT", help="the network to start from (default: the shipped one)")
    ap.add_argument("--data", required=True, nargs="+", metavar="RECORDING",
                    help="unlabelled stereo recordings of the rig (MVSEC-layout .hdf5 or DSEC folders)")
    ap.add_argument("--out", required=True, metavar="DIR", help="output folder (model.pt, checkpoints, logs, plots)")
    ap.add_argument("--config", default=DEFAULT_CONFIG, help=f"run config YAML (default {DEFAULT_CONFIG})")
    ap.add_argument("--epochs", type=int, metavar="N", help="epochs to train (trainer.max_epochs; default 5)")
    ap.add_argument("--steps-per-epoch", type=int, metavar="N",
                    help="batches per epoch (data.steps_per_epoch; default 100; 0: one pass over the windows)")
    ap.add_argument("--lr", type=float, help="Adam learning rate (module.lr; default 1e-4)")
    ap.add_argument("--crop", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                    help="train on random crops of this size (data.crop; default whole frames)")
    ap.add_argument("--batch-size", type=int, metavar="N", help="windows per batch (data.batch_size; default 2)")
    ap.add_argument("--scale", metavar="auto|FACTOR",
                    help="resample the network's input by this factor, as evaluation and live depth do (data.scale; "
                         "default auto: towards the sensor size the network is trained around; 1: off)")
    add_device_option(ap)
    ap.add_argument("--no-resume", action="store_true",
                    help="start afresh from the checkpoint even if DIR/checkpoints/last.ckpt exists")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout (no progress bar)")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="less output: no progress bars, no Lightning info lines (warnings and errors stay)")
    ap.add_argument("overrides", nargs="*", metavar="section.key=value",
                    help="change any config value (parsed as YAML), e.g. module.smoothness=0.1")
    return ap


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    # `--data a.hdf5 b.hdf5 module.lr=...`: --data takes every word up to the next option
    args.overrides = [d for d in args.data if _OVERRIDE.match(d)] + args.overrides
    args.data = [d for d in args.data if not _OVERRIDE.match(d)]
    if not args.data:
        raise InputError(None, "--data: give at least one recording")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(None, f"--{name.replace('_', '-')} {getattr(args, name)}: must be 1 or more")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 0:
        raise InputError(None, f"--steps-per-epoch {args.steps_per_epoch}: must be 0 (one pass) or more")
    if args.lr is not None and not args.lr > 0:
        raise InputError(None, f"--lr {args.lr}: must be positive")
    if args.crop is not None and min(args.crop) < 1:
        raise InputError(None, f"--crop {args.crop[0]} {args.crop[1]}: must be positive")
    if args.scale is not None:
        try:
            args.scale = parse_scale(args.scale)
        except ValueError as exc:
            raise InputError(None, f"--scale {args.scale}: {exc}") from None
    return args


def run_config(args: argparse.Namespace) -> dict:
    """The run config: the file, its overrides, then the options given on the command line."""
    device = resolve_device(args.device)  # before anything is read
    cfg = load_run_config(args.config, args.overrides)
    options = {("trainer", "max_epochs"): args.epochs, ("module", "lr"): args.lr,
               ("data", "crop"): list(args.crop) if args.crop else None, ("data", "batch_size"): args.batch_size,
               ("data", "scale"): args.scale}
    for (section, key), value in options.items():
        if value is not None:
            cfg.setdefault(section, {})[key] = value
    if args.steps_per_epoch is not None:  # 0: one pass over the windows
        cfg.setdefault("data", {})["steps_per_epoch"] = args.steps_per_epoch or None
    cfg.setdefault("trainer", {}).update({"accelerator": "cpu", "devices": 1} if device.type == "cpu" else
                                         {"accelerator": "gpu", "devices": [device.index or 0]})
    cfg["out"] = args.out
    return cfg


def _losses(metrics: Path) -> list[float]:
    if not metrics.is_file():
        return []
    with open(metrics, newline="") as fh:
        return [float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")]


def adapt(args: argparse.Namespace) -> int:
    cfg = run_config(args)
    out = check_writable(args.out, folder=True)
    quiet = args.quiet or args.json  # Lightning's bar writes to stdout, which --json keeps for the result
    seed_run(cfg, quiet)
    ckpt = Path(args.checkpoint) if args.checkpoint else shipped_checkpoint()
    net = load_checkpoint(ckpt)
    with config_section(cfg, "data"):
        dm = UnlabelledDataModule(args.data, net.input_spec.as_dict(), nominal_hw=getattr(net, "nominal_size", None),
                                  progress=not quiet, max_disparity=net.max_disparity, **(cfg.get("data") or {}))
    ds = dm.dataset
    if not quiet:
        at = ", ".join(sorted({f"input scale {s:g} ({h}x{w})" for s, (h, w) in zip(ds.scales, ds.sizes)}))
        say(f"adapting {ckpt} on {len(ds)} windows of {len(args.data)} recording(s), {at}")
    with config_section(cfg, "module"):
        module = AdaptModule.from_network(net, **(cfg.get("module") or {}))
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():  # stdout: the JSON only
        trainer = fit(cfg, module, resume=not args.no_resume, quiet=quiet, datamodule=dm)
    model_path = out / "model.pt"
    options = {k: v for k, v in module.hparams.items() if k not in ("net", "genotype")}  # the loss's, plain data
    save_checkpoint(module.model, model_path, extra={
        "adapted_from": str(ckpt), "recordings": [str(p) for p in args.data], "epochs": trainer.current_epoch,
        "steps": trainer.global_step, "selfsup": options})
    plots = write_plots(trainer, out)
    losses = _losses(out / "csv" / "metrics.csv")
    result = {"model": str(model_path), "checkpoint": str(ckpt), "recordings": [str(p) for p in args.data],
              "windows": len(ds), "scales": ds.scales, "epochs": trainer.current_epoch, "steps": trainer.global_step,
              "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
              "plots": [str(p) for p in plots]}
    if args.json:
        print(json.dumps(result, indent=2))
    elif not args.quiet:
        trend = f", loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else ""
        print(f"adapted for {result['epochs']} epochs, {result['steps']} steps{trend}")
        print(f"wrote {model_path}")
        for p in plots:
            print(f"wrote {p}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool(lambda: adapt(parse_args(argv)), interrupted=INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
