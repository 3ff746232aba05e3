"""Run configs for `apps.train` and `apps.search`: YAML + dotted overrides -> Trainer.fit.

A run config has the sections ``model`` (a model YAML path or mapping), ``module``
(LightningModule options), ``data`` (StereoDataModule options), ``trainer`` (any
``lightning.Trainer`` option: accelerator, devices, strategy="ddp", num_nodes, ...),
``dgs`` (DGSCallback options; ``enabled: false`` turns it off), ``checkpoint``
(``every_n_train_steps``), ``seed`` and ``out``. Overrides on the command line look like
``trainer.max_epochs=3 data.batch_size=4`` (values parsed as YAML).

Every epoch writes ``out/checkpoints/epochNNN.ckpt`` and every ``every_n_train_steps``
steps ``out/checkpoints/last.ckpt``; starting the same run again resumes from ``last.ckpt``
(mid-epoch included). Logs go to TensorBoard (``out/tb``) and CSV (``out/csv``).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
import os
from pathlib import Path
from typing import Iterator

import lightning as L
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from evstereo.datasets.datamodule import StereoDataModule
from evstereo.errors import InputError
from evstereo.fileio import read_yaml
from evstereo.models import read_config, net_config, resolve_genotype

SECTIONS = ("model", "module", "data", "trainer", "dgs", "checkpoint", "seed", "out")
# integer settings checked when the config is read (others fail in the constructor they feed,
# see config_section); these would otherwise fail deep inside Lightning or PyTorch mid-run
_INTS = {"seed": 0, "data.batch_size": 1, "data.num_workers": 0, "trainer.max_epochs": 1,
         "checkpoint.every_n_train_steps": 1}


def load_run_config(path: str | os.PathLike, overrides: list[str] | None = None) -> dict:
    """The run config with overrides applied; relative paths stay relative to the cwd."""
    path = Path(path)
    cfg = read_yaml(path, "config file") or {}
    if not isinstance(cfg, dict):
        raise InputError(path, "config must be a mapping of sections")
    unknown = set(cfg) - set(SECTIONS)
    if unknown:
        raise InputError(path, f"unknown section(s): {', '.join(sorted(unknown))} (known: {', '.join(SECTIONS)})")
    for item in overrides or []:
        if "=" not in item:
            raise InputError(path, f"override {item!r} must look like section.key=value")
        key, value = item.split("=", 1)
        node = cfg
        parts = key.split(".")
        if parts[0] not in SECTIONS:
            raise InputError(path, f"override {item!r}: unknown section {parts[0]!r}")
        if parts[0] == "model" and len(parts) > 1 and isinstance(cfg.get("model"), str):
            cfg["model"] = _inline_model(cfg["model"])
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(path, f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    cfg.setdefault("out", f"runs/{path.stem}")
    cfg.setdefault("seed", 0)
    for key, low in _INTS.items():
        section, _, name = key.rpartition(".")
        node = cfg.get(section) if section else cfg
        value = node.get(name) if isinstance(node, dict) else None
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise InputError(path, f"{key} must be an integer >= {low}, not {value!r}")
    cfg["_source"] = str(path)  # for error messages (not a section)
    return cfg



@contextmanager
def config_section(cfg: dict, section: str) -> Iterator[None]:
    """Report a bad value met while building from ``section`` (a TypeError or ValueError from
    the constructor it feeds) as an InputError naming the config file and the section."""
    try:
        yield
    except InputError:
        raise  # already names its file
    except (TypeError, ValueError) as exc:
        raise InputError(cfg.get("_source"), f"section {section!r}: {' '.join(str(exc).split())}") from None


def _inline_model(model_path: str) -> dict:
    """A model YAML as a mapping (so overrides can change it), its genotype path made absolute."""
    data, source = read_config(model_path)
    g = data.get("genotype")
    if isinstance(g, str) and g != "reference" and not Path(g).is_absolute() and (source.parent / g).exists():
        data["genotype"] = str((source.parent / g).resolve())
    return data


def model_options(cfg: dict, with_genotype: bool = True) -> tuple[dict, dict | None]:
    """(NetConfig fields, genotype data) from the run config's ``model`` entry (a path or mapping)."""
    data, source = read_config(cfg.get("model") or {})
    if not with_genotype:
        return net_config(data, source).as_dict(), None
    try:
        genotype = resolve_genotype(data.get("genotype"), source.parent if source else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(source, f"invalid genotype ({exc})") from None
    return net_config(data, source).as_dict(), genotype.to_data()


def generate_recordings(entries: list[dict]) -> None:
    """Make the synthetic recordings a config lists under ``data.generate`` when missing.

    Each entry: ``{out, name, seconds, seed}`` as for ``data_tools.synth``; so a config plus
    one command reproduce a training run from nothing.
    """
    from evstereo.simulation import synthesize

    for e in entries:
        if not (Path(e["out"]) / f"{e['name']}_data.hdf5").exists():
            print(f"generating {e['out']}/{e['name']} ({e['seconds']} s, seed {e['seed']})", flush=True)
            synthesize(e["out"], e["name"], float(e["seconds"]), int(e["seed"]))


def build_datamodule(cfg: dict, input_spec: dict, search: bool = False) -> StereoDataModule:
    data = copy.deepcopy(cfg.get("data") or {})
    generate_recordings(data.pop("generate", []))
    spec = data.pop("spec", None)
    if spec is not None and {k: spec.get(k, v) for k, v in input_spec.items()} != input_spec:
        raise InputError(None, f"data.spec {spec} does not match the model's input {input_spec}")
    if "crop" in data and data["crop"] is not None:
        data["crop"] = tuple(data["crop"])
    return StereoDataModule(spec={**input_spec, **(spec or {})}, search_split=search, **data)


def build_trainer(cfg: dict, callbacks: list) -> L.Trainer:
    out = Path(cfg["out"])
    ckpt = cfg.get("checkpoint") or {}
    callbacks = list(callbacks) + [
        ModelCheckpoint(dirpath=out / "checkpoints", filename="epoch{epoch:03d}", every_n_epochs=1, save_top_k=-1,
                        auto_insert_metric_name=False, enable_version_counter=False),
        LastCheckpoint(out / "checkpoints" / "last.ckpt", int(ckpt.get("every_n_train_steps", 100))),
        TQDMProgressBar(refresh_rate=int(ckpt.get("progress_refresh", 10))),
    ]
    opts = {"max_epochs": 10, "log_every_n_steps": 10, "accelerator": "auto", "devices": 1,
            "num_sanity_val_steps": 0, **(cfg.get("trainer") or {})}
    loggers = [TensorBoardLogger(out, name="tb", version=""), CSVLogger(out, name="csv", version="")]
    return L.Trainer(default_root_dir=out, callbacks=callbacks, logger=loggers, **opts)


class LastCheckpoint(L.Callback):
    """``last.ckpt``, the resume point: every ``every_n_steps`` steps and at each epoch end.

    Written under a temporary name and renamed, so a kill during the write leaves the
    previous one intact. Resuming mid-epoch restarts that epoch's data loader (it is not
    resumable) but keeps the step count, so no step is trained twice or skipped.
    """

    def __init__(self, path: Path, every_n_steps: int):
        self.path, self.every_n_steps = Path(path), max(int(every_n_steps), 1)

    def _save(self, trainer: L.Trainer) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)  # every rank calls it; rank 0 writes
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        # only a finished epoch: a run cut short (max_steps) must resume inside its epoch
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._save(trainer)


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


def fit(cfg: dict, module: L.LightningModule, resume: bool, search: bool = False) -> L.Trainer:
    """Data, trainer (checkpoints, logs, DGS unless disabled) and ``Trainer.fit``, resuming from last.ckpt."""
    with config_section(cfg, "data"):
        dm = build_datamodule(cfg, module.model.input_spec, search=search)
    with config_section(cfg, "dgs"):
        callbacks = dgs_callbacks(cfg)
    with config_section(cfg, "trainer"):
        trainer = build_trainer(cfg, callbacks)
    ckpt = resume_path(cfg, resume)
    if ckpt:
        print(f"resuming from {ckpt}", flush=True)
    trainer.fit(module, dm, ckpt_path=ckpt)
    return trainer
