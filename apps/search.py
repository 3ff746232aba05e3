"""`python -m apps.search --config configs/search/X.yaml [section.key=value ...]`: search an architecture.

First-order bi-level search of the SpikeDHS supernet with the cost constraint. Writes
OUT/genotype.yaml (what `apps.train` consumes via the model config's `genotype:`), the
architecture history, and PNG plots of the search under OUT/plots (architecture weights, decoded
cells and layer paths, loss and validation curves). Resumes from OUT/checkpoints/last.ckpt
(--no-resume starts afresh); Ctrl-C stops it with exit status 130, bad input is one line and
exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evstereo.errors import run_tool
from evstereo.fileio import write_text_atomic
from evstereo.training.modules import StereoSearchModule
from evstereo.training.runner import (INTERRUPTED, add_run_arguments, config_section, fit, load_run_config,
                                      model_options, seed_run)
from evstereo.viz.search_plots import plot_search
from evstereo.viz.training_plots import plot_training_curves


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apps.search", description=__doc__.splitlines()[0])
    add_run_arguments(ap, "configs/search", "module.energy_budget_mj=0.25")
    args = ap.parse_intermixed_args(argv)  # overrides may come after -q too
    return run_tool(lambda: search(args), interrupted=INTERRUPTED)


def search(args: argparse.Namespace) -> int:
    cfg = load_run_config(args.config, args.overrides)
    cfg.setdefault("dgs", {}).setdefault("enabled", False)  # DGS belongs to retraining
    seed_run(cfg, args.quiet)
    net, _ = model_options(cfg, with_genotype=False)
    with config_section(cfg, "module"):
        module = StereoSearchModule(net=net, **(cfg.get("module") or {}))
    trainer = fit(cfg, module, resume=not args.no_resume, search=True, quiet=args.quiet)
    if trainer.is_global_zero:
        out = Path(cfg["out"])
        genotype = module.model.genotype()
        genotype.save(out / "genotype.yaml")
        write_text_atomic(out / "arch_history.json", json.dumps(module.history))
        print(genotype)
        print(f"wrote {out / 'genotype.yaml'}")
        written = plot_search(module.history, out / "plots")
        curves = plot_training_curves(out / "csv" / "metrics.csv", out / "plots" / "curves.png")
        for p in written + ([curves] if curves is not None else []):
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
