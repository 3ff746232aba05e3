"""Run configs for `apps.train` and `apps.search`: YAML + dotted overrides -> Trainer.fit.

A run config has the sections ``model`` (a model YAML path or mapping), ``module``
(LightningModule options), ``data`` (StereoDataModule options), ``trainer`` (any
``lightning.Trainer`` option: accelerator, devices, strategy="ddp", num_nodes, ...),
``dgs`` (DGSCallback options; ``enabled: false`` turns it off), ``checkpoint``
(``every_n_train_steps``), ``seed`` and ``out``; a training config may chain further steps
after it (``then``, see :func:`training_steps`). Overrides on the command line look like
``trainer.max_epochs=3 data.batch_size=4 then.0.module.lr=1e-4`` (values parsed as YAML).

Every finished epoch writes ``out/checkpoints/epochNNN.ckpt`` and every
``every_n_train_steps`` steps ``out/checkpoints/last.ckpt``; starting the same run again
resumes from ``last.ckpt`` (mid-epoch included), read as data only (``weights_only=True``),
and keeps the whole history in the logs: TensorBoard (``out/tb``) and CSV (``out/csv``).
Ctrl-C or SIGTERM ends ``fit`` with KeyboardInterrupt (Lightning's own handler would exit 1).
Lightning's advertising tips and warnings about what this runner does on purpose are kept
out of the output; ``quiet`` also drops the progress bars and Lightning's info lines.
"""
from __future__ import annotations

import argparse
import copy
import logging
import os
import re
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from evstereo.datasets.datamodule import StereoDataModule
from evstereo.errors import InputError
from evstereo.events.input_spec import InputSpec, sample_input
from evstereo.resources import find_config
from evstereo.fileio import read_yaml
from evstereo.models import NetConfig, model_parts, read_config
from evstereo.search.genotypes import Genotype
from evstereo.training.checkpoints import (AtomicCheckpointIO, EpochCheckpoint, LastCheckpoint, ResumableCSVLogger,
                                           read_resume_checkpoint)

__all__ = ["INTERRUPTED", "LastCheckpoint", "add_run_arguments", "build_datamodule", "build_trainer", "config_section",
           "fit", "generate_recordings", "load_run_config", "model_options", "resume_path", "say", "seed_run",
           "training_steps"]

INTERRUPTED = "interrupted: run the same command again to resume"

SECTIONS = ("model", "module", "data", "trainer", "dgs", "checkpoint", "seed", "out")
# integer settings checked when the config is read (others fail in the constructor they feed,
# see config_section); these would otherwise fail deep inside Lightning or PyTorch mid-run
_INTS = {"seed": 0, "data.batch_size": 1, "data.num_workers": 0, "trainer.max_epochs": 1,
         "checkpoint.every_n_train_steps": 1}


def load_run_config(path: str | os.PathLike, overrides: list[str] | None = None, chain: bool = False) -> dict:
    """The run config with overrides applied; relative paths stay relative to the cwd (a
    ``configs/...`` path missing there is taken from the packaged configs: see find_config).
    ``chain``: the config may hold a ``then`` list of further steps (apps.train)."""
    path = find_config(path)
    cfg = read_yaml(path, "config file") or {}
    if not isinstance(cfg, dict):
        raise InputError(path, "config must be a mapping of sections")
    known = SECTIONS + ("then",) if chain else SECTIONS
    unknown = set(cfg) - set(known)
    if unknown:
        raise InputError(path, f"unknown section(s): {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    for item in overrides or []:
        if "=" not in item:
            raise InputError(path, f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        parts = key.split(".")
        if parts[0] not in known:
            raise InputError(path, f"override {item!r}: unknown section {parts[0]!r}")
        if parts[0] == "model" and len(parts) > 1 and isinstance(cfg.get("model"), str):
            cfg["model"] = _inline_model(cfg["model"])
        node = cfg
        for p in parts[:-1]:
            node = _override_node(node, p, path, item)
        if isinstance(node, list):  # then.0=... replaces a whole step
            node[_list_index(node, parts[-1], path, item)] = yaml.safe_load(value)
        else:
            node[parts[-1]] = yaml.safe_load(value)
    cfg.setdefault("out", f"runs/{path.stem}")
    cfg.setdefault("seed", 0)
    _check_ints(cfg, path)
    cfg["_source"] = str(path)  # for error messages (not a section)
    return cfg


def _list_index(node: list, part: str, path: Path, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise InputError(path, f"override {item!r}: {part!r} is not an index of a {len(node)}-item list")
    return int(part)


def _override_node(node: dict | list, part: str, path: Path, item: str) -> dict | list:
    """The mapping or list an override's next key leads to (a missing mapping is created)."""
    child = node[_list_index(node, part, path, item)] if isinstance(node, list) else node.setdefault(part, {})
    if not isinstance(child, (dict, list)):
        raise InputError(path, f"override {item!r}: {part!r} is not a section")
    return child


def _check_ints(cfg: dict, path: str | os.PathLike | None) -> None:
    for key, low in _INTS.items():
        section, _, name = key.rpartition(".")
        node = cfg.get(section) if section else cfg
        value = node.get(name) if isinstance(node, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise InputError(path, f"{key} must be an integer >= {low}, not {value!r}")


_STEP_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in: mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def training_steps(cfg: dict) -> list[dict]:
    """The run config and the steps its ``then`` list chains after it, as one config each.

    A step is ``{name: NAME, <section>: {...}, ...}``: the previous step's config (command-line
    overrides included) with those sections merged in key by key, trained from the previous
    step's ``model.pt`` (``module.init``) into ``OUT/NAME`` (OUT: the previous step's). So one
    config and one command give a network trained in several steps, each resumable on its own.
    """
    source = cfg.get("_source")
    then = cfg.get("then") or []
    if not isinstance(then, list):
        raise InputError(source, f"then must be a list of steps, not {then!r}")
    steps = [{k: v for k, v in cfg.items() if k != "then"}]
    names = set()
    for i, step in enumerate(then):
        where = f"then.{i}"
        if not isinstance(step, dict) or not _STEP_NAME.match(str(step.get("name", ""))):
            raise InputError(source, f"{where} must be a mapping with a name (letters, digits, - or _)")
        if step["name"] in names:
            raise InputError(source, f"{where}: step name {step['name']!r} is used twice")
        names.add(step["name"])
        sections = {k: v for k, v in step.items() if k != "name"}
        wrong = set(sections) - (set(SECTIONS) - {"out"})
        if wrong:
            raise InputError(source, f"{where}: unknown or fixed section(s) {', '.join(sorted(wrong))} (a step's "
                                     f"out is OUT/NAME)")
        if not all(isinstance(v, dict) for k, v in sections.items() if k not in ("model", "seed")):
            raise InputError(source, f"{where}: each section must be a mapping")
        if "init" in (sections.get("module") or {}):
            raise InputError(source, f"{where}: module.init is the previous step's model.pt")
        previous = steps[-1]
        merged = _merged(previous, sections)
        merged["out"] = str(Path(previous["out"]) / step["name"])
        merged.setdefault("module", {})["init"] = str(Path(previous["out"]) / "model.pt")
        _check_ints(merged, source)
        steps.append(merged)
    return steps


def add_run_arguments(parser: argparse.ArgumentParser, config_dir: str, example: str) -> None:
    """The options apps.train and apps.search share: --config, overrides, --no-resume, -q."""
    parser.add_argument("--config", required=True, help=f"run config YAML ({config_dir}/...)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help=f"change any config value (parsed as YAML), e.g. {example}")
    parser.add_argument("--no-resume", action="store_true",
                        help="start afresh from step 0 even if OUT/checkpoints/last.ckpt exists (the new run "
                             "replaces OUT/csv/metrics.csv; every step of a `then` chain starts afresh) and "
                             "rebuild damaged training caches")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="less output: no progress bars, no Lightning info lines (warnings and errors stay)")


@contextmanager
def config_section(cfg: dict, section: str) -> Iterator[None]:
    """Report a bad value met while building from ``section`` (a TypeError or ValueError from
    the constructor it feeds) as an InputError naming the config file and the section."""
    try:
        yield
    except InputError:
        raise  # already names its file
    except (TypeError, ValueError, MisconfigurationException) as exc:  # Lightning's word for a bad option value
        raise InputError(cfg.get("_source"), f"section {section!r}: {' '.join(str(exc).split())}") from None


def _inline_model(model_path: str) -> dict:
    """A model YAML as a mapping (so overrides can change it); a genotype it names by path is
    resolved now, relative to that file's folder (the mapping no longer knows the folder)."""
    data, source = read_config(model_path)
    if isinstance(data.get("genotype"), str):
        try:
            data["genotype"] = Genotype.resolve(data["genotype"], source.parent)
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"invalid genotype ({exc})") from None
    return data


def model_options(cfg: dict, with_genotype: bool = True) -> tuple[NetConfig, Genotype | None]:
    """(NetConfig, Genotype) of the run config's ``model`` entry (a path or mapping); see
    :func:`evstereo.models.model_parts`."""
    return model_parts(cfg.get("model") or {}, with_genotype)


def seed_run(cfg: dict, quiet: bool = False) -> None:
    """Seed everything (data-loader workers included) from ``cfg["seed"]``, saying so once."""
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=not quiet and rank_zero_only.rank == 0)


def say(message: str) -> None:
    """Print a line once per run, not once per process (ranks other than 0 stay silent)."""
    if rank_zero_only.rank == 0:
        print(message, flush=True)


def generate_recordings(entries: list[dict], wait_s: float = 3600.0) -> None:
    """Make the synthetic recordings a config lists under ``data.generate`` when missing.

    Each entry: ``{out, name, seconds, seed}`` as for ``data_tools.synth``, plus any
    :class:`~evstereo.simulation.SynthOptions` field (e.g. ``speed``, ``threshold``); so a
    config plus one command reproduce a training run from nothing. Under a launcher that starts every
    rank at once (torchrun, srun), rank 0 writes them and the others wait for its files.
    """
    from evstereo.simulation import synthesize

    for e in entries:
        files = [Path(e["out"]) / f"{e['name']}_{kind}.hdf5" for kind in ("data", "gt")]
        if rank_zero_only.rank != 0:
            deadline = time.monotonic() + wait_s
            while not all(f.exists() for f in files) and time.monotonic() < deadline:
                time.sleep(1.0)
        elif not files[0].exists():
            say(f"generating {e['out']}/{e['name']} ({e['seconds']} s, seed {e['seed']})")
            options = {k: v for k, v in e.items() if k not in ("out", "name", "seconds", "seed")}
            synthesize(e["out"], e["name"], float(e["seconds"]), int(e["seed"]), **options)


def build_datamodule(cfg: dict, input_spec: InputSpec, search: bool = False, quiet: bool = False,
                     rebuild_damaged: bool = False) -> StereoDataModule:
    """The StereoDataModule of the ``data`` section (generating ``data.generate`` first), its
    samples built for ``input_spec`` (the network's); ``data.spec`` may add ground-truth rules
    (gt_max_disparity, disparity_quantum) and repeat, never change, the network's input."""
    data = copy.deepcopy(cfg.get("data") or {})
    generate_recordings(data.pop("generate", None) or [])
    spec = data.pop("spec", None)
    net = input_spec.as_dict()
    if spec is not None and {k: spec.get(k, v) for k, v in net.items()} != net:
        raise InputError(None, f"data.spec {spec} does not match the model's input {net}")
    if "arch_batches" in data:
        raise InputError(None, "data.arch_batches is set from module.arch_batches: set that one")
    arch_batches = (cfg.get("module") or {}).get("arch_batches", 1) if search else 1
    return StereoDataModule(spec={**net, **(spec or {})}, search_split=search, progress=not quiet,
                            rebuild_damaged_cache=rebuild_damaged, arch_batches=arch_batches, **data)


def _check_accelerator(cfg: dict, accelerator) -> None:
    # Lightning's own message for this is a multi-line exception from deep inside Trainer()
    name = str(accelerator).lower()
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no GPU found"
        raise InputError(cfg.get("_source"), f"trainer.accelerator={accelerator}: CUDA is not available on this "
                                             f"machine (torch {torch.__version__}, {build}); use trainer.accelerator=cpu")


def build_trainer(cfg: dict, callbacks: list, resuming: bool = False, quiet: bool = False) -> L.Trainer:
    """The Trainer: the run's checkpoints, loggers and progress bar around the ``trainer`` section."""
    out = Path(cfg["out"])
    ckpt = cfg.get("checkpoint") or {}
    opts = {"max_epochs": 10, "log_every_n_steps": 10, "accelerator": "auto", "devices": 1,
            "num_sanity_val_steps": 0, **(cfg.get("trainer") or {})}
    _check_accelerator(cfg, opts["accelerator"])
    callbacks = list(callbacks) + [EpochCheckpoint(out / "checkpoints"),
                                   LastCheckpoint(out / "checkpoints" / "last.ckpt",
                                                  int(ckpt.get("every_n_train_steps", 100)))]
    if quiet:
        opts.update(enable_progress_bar=False, enable_model_summary=False)
    elif opts.get("enable_progress_bar", True):
        callbacks.append(_ProgressBar(refresh_rate=int(ckpt.get("progress_refresh", 10))))
    plugins = opts.pop("plugins", None) or []
    plugins = (list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]) + [AtomicCheckpointIO()]
    loggers = [TensorBoardLogger(out, name="tb", version=""), ResumableCSVLogger(out, resuming, name="csv", version="")]
    return L.Trainer(default_root_dir=out, callbacks=callbacks, logger=loggers, plugins=plugins, **opts)


class _ProgressBar(TQDMProgressBar):
    """Lightning's bar, also titled "Epoch N" with its length for an epoch resumed mid-way
    (Lightning does not call on_train_epoch_start then)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if trainer.fit_loop.restarted_mid_epoch:
            self.on_train_epoch_start(trainer)


def resume_path(cfg: dict, resume: bool) -> str | None:
    last = Path(cfg["out"]) / "checkpoints" / "last.ckpt"
    return str(last) if resume and last.exists() else None


def dgs_callbacks(cfg: dict) -> list:
    """The DGS callback unless ``dgs.enabled`` is false (DGS is on by default)."""
    from evstereo.training.dgs import DGSCallback

    opts = dict(cfg.get("dgs") or {})
    if not opts.pop("enabled", True):
        return []
    return [DGSCallback(**opts)]


# Lightning lines that are advertising or chatter about what this runner does on purpose
_NOISE_LOGS = ("💡 Tip:", "litlogger", "litmodels", "LitServe", "`weights_only` was not set",
               "Detected KeyboardInterrupt")
_NOISE_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # torch deprecation inside Lightning, nothing to do for a user
    r"Checkpoint directory .* exists and is not empty",  # resuming into the same folder is the design
    r"Experiment logs directory .* exists and is not empty",  # ResumableCSVLogger keeps or replaces it
    r"You're resuming from a checkpoint that ended before the epoch ended",  # documented: the epoch restarts its loader
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in _NOISE_LOGS)


@contextmanager
def _lightning_output(quiet: bool) -> Iterator[None]:
    """Lightning's logging without its noise (and at WARNING with ``quiet``), restored afterwards."""
    noise = _DropNoise()
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    targets = [*loggers, *(h for lg in loggers for h in lg.handlers), *logging.getLogger().handlers]
    levels = [lg.level for lg in loggers]
    for t in targets:
        t.addFilter(noise)
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _NOISE_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for t in targets:
            t.removeFilter(noise)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def fit(cfg: dict, module: L.LightningModule, resume: bool, search: bool = False, quiet: bool = False,
        datamodule: L.LightningDataModule | None = None) -> L.Trainer:
    """Data, trainer (checkpoints, logs, DGS unless disabled) and ``Trainer.fit``, resuming from last.ckpt.

    The resume file is checked first (data only, not damaged), before any data is prepared.
    ``datamodule`` replaces the ``data`` section's StereoDataModule (apps.adapt's unlabelled windows).
    """
    ckpt = resume_path(cfg, resume)
    if ckpt:
        read_resume_checkpoint(ckpt)
    with _lightning_output(quiet):
        dm = datamodule
        if dm is None:
            with config_section(cfg, "data"):
                dm = build_datamodule(cfg, sample_input(module.model), search=search, quiet=quiet,
                                      rebuild_damaged=not resume)
        with config_section(cfg, "dgs"):
            callbacks = dgs_callbacks(cfg)
        with config_section(cfg, "trainer"):
            trainer = build_trainer(cfg, callbacks, resuming=ckpt is not None, quiet=quiet)
        if ckpt:
            say(f"resuming from {ckpt}")
        try:
            trainer.fit(module, dm, ckpt_path=ckpt, weights_only=True)
        except SystemExit:
            if trainer.interrupted:  # Lightning's Ctrl-C handler: cleaned up, then sys.exit(1)
                raise KeyboardInterrupt from None
            raise
    return trainer
