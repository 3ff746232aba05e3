"""`python -m apps.train --config configs/train/X.yaml [section.key=value ...]`: train a stereo network.

Resumes from OUT/checkpoints/last.ckpt when it exists (run the same command again after an
interruption; --no-resume starts afresh); writes OUT/model.pt (the network with its config and
genotype) at the end, and PNG plots under OUT/plots: DGS temperatures (dgs.png), learned time
constants (time_constants.png), loss and validation metrics over the whole run (curves.png).
A config's ``then`` list chains further steps, each trained from the previous one's model.pt
into OUT/NAME (evstereo.training.runner.training_steps); a finished step resumes at its end.
Ctrl-C stops it with exit status 130; bad input is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L

from evstereo.errors import run_tool
from evstereo.models import checkpoint_extra, save_checkpoint
from evstereo.training.dgs import DGSCallback
from evstereo.training.modules import StereoTrainModule
from evstereo.training.runner import (INTERRUPTED, add_run_arguments, config_section, dgs_callbacks, fit,
                                      load_run_config, model_options, say, seed_run, training_steps)
from evstereo.viz.training_plots import plot_dgs_history, plot_time_constants, plot_training_curves


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apps.train", description=__doc__.splitlines()[0])
    add_run_arguments(ap, "configs/train", "trainer.max_epochs=3")
    args = ap.parse_intermixed_args(argv)  # overrides may come after -q too
    return run_tool(lambda: train(args), interrupted=INTERRUPTED)


def train(args: argparse.Namespace) -> int:
    steps = training_steps(load_run_config(args.config, args.overrides, chain=True))
    for cfg in steps[1:]:  # a bad value in a later step is found now, not after the first has trained
        check_step(cfg)
    for i, cfg in enumerate(steps):
        if len(steps) > 1:
            init = (cfg.get("module") or {}).get("init") if i else None
            say(f"step {i + 1} of {len(steps)}: {cfg['out']}" + (f" (from {init})" if init else ""))
        train_step(cfg, args)
    return 0


def build_module(cfg: dict, load_init: bool = True) -> StereoTrainModule:
    """A step's network and LightningModule (``load_init=False``: without its init weights, which
    a later step's previous step has not written yet)."""
    net, genotype = model_options(cfg)
    options = dict(cfg.get("module") or {})
    if not load_init:
        options["init"] = None
    with config_section(cfg, "module"):
        return StereoTrainModule(net=net, genotype=genotype, **options)


def check_step(cfg: dict) -> None:
    """Build a step's network, module and DGS options (without its init weights) to check them."""
    build_module(cfg, load_init=False)
    with config_section(cfg, "dgs"):
        dgs_callbacks(cfg)


def train_step(cfg: dict, args: argparse.Namespace) -> None:
    """One run: fit (resuming where it stopped), then OUT/model.pt and the plots."""
    seed_run(cfg, args.quiet)
    module = build_module(cfg)
    trainer = fit(cfg, module, resume=not args.no_resume, quiet=args.quiet)
    if trainer.is_global_zero:
        out = Path(cfg["out"]) / "model.pt"
        dgs = next((cb for cb in trainer.callbacks if isinstance(cb, DGSCallback)), None)
        # the surrogate search's record travels with the weights it produced (plain data)
        extra = {"epochs": trainer.current_epoch, "steps": trainer.global_step,
                 "dgs_history": dgs.history if dgs is not None else []}
        init = (cfg.get("module") or {}).get("init")
        if init is not None:  # a fine-tune keeps the record of the run its weights came from
            extra["init"] = {"checkpoint": str(init), **checkpoint_extra(init)}
        save_checkpoint(module.model, out, extra=extra)
        print(f"wrote {out}")
        for p in write_plots(trainer, Path(cfg["out"])):
            print(f"wrote {p}")
    trainer.strategy.barrier("model.pt")  # a chained step's every rank reads it next


def write_plots(trainer: L.Trainer, out: Path) -> list[Path]:
    """OUT/plots/dgs.png, time_constants.png and curves.png, as far as the run has data for them."""
    plots, metrics = out / "plots", out / "csv" / "metrics.csv"
    dgs = next((cb for cb in trainer.callbacks if isinstance(cb, DGSCallback)), None)
    written = [plot_dgs_history(dgs.history, plots / "dgs.png") if dgs is not None else None,
               plot_time_constants(metrics, plots / "time_constants.png"),
               plot_training_curves(metrics, plots / "curves.png")]
    return [p for p in written if p is not None]


if __name__ == "__main__":
    sys.exit(main())
