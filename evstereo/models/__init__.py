"""Pure-torch models: the spiking stereo network (from a genotype), its supernet, baselines.

``build_stereo_net(config)`` takes a dict or a YAML path::

    genotype: reference            # 'reference', a genotype YAML path, or the genotype inline
    max_disparity: 63              # ... any NetConfig field
    in_channels: 5

``model_parts(config)`` gives the (NetConfig, Genotype) pair such a config describes (the
genotype through ``Genotype.resolve``, relative to the config file's folder).
``build_search_net(config)`` builds the supernet (``feature_layers``/``matching_layers``
instead of ``genotype``). ``save_checkpoint``/``load_checkpoint`` store a network with its
config and genotype so it can be rebuilt without the config file.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from evstereo.errors import InputError
from evstereo.resources import find_config
from evstereo.fileio import atomic_path, read_yaml
from evstereo.models.search_net import SearchStereoNet
from evstereo.models.sgbm import SGBMStereo
from evstereo.models.stereo_net import NetConfig, StereoNet
from evstereo.search.genotypes import Genotype

__all__ = ["NetConfig", "SGBMStereo", "SearchStereoNet", "StereoNet", "build_search_net", "build_stereo_net",
           "checkpoint_extra", "load_checkpoint", "model_parts", "read_checkpoint_file", "save_checkpoint",
           "shipped_checkpoint"]

CHECKPOINT_FORMAT = "evstereo-stereonet-1"
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "fast.pt"


def shipped_checkpoint() -> Path:
    """The checkpoint that ships with the package (used when an app gets no --checkpoint)."""
    if not SHIPPED.is_file():
        raise InputError(SHIPPED, "the shipped checkpoint is missing; pass --checkpoint")
    return SHIPPED
_NET_FIELDS = {f.name for f in fields(NetConfig)}


def read_config(config: dict | str | os.PathLike) -> tuple[dict, Path | None]:
    if isinstance(config, dict):
        return dict(config), None
    path = find_config(config)  # README paths (configs/model/...) also work outside the checkout
    data = read_yaml(path, "model config")
    if not isinstance(data, dict):
        raise InputError(path, "model config must be a mapping of options")
    return data, path


def net_config(data: dict, source=None) -> NetConfig:
    """NetConfig from the known keys of a config mapping (unknown keys are an error)."""
    unknown = set(data) - _NET_FIELDS - {"genotype", "feature_layers", "matching_layers"}
    if unknown:
        raise InputError(source, f"unknown model option(s): {', '.join(sorted(unknown))}")
    try:
        return NetConfig(**{k: v for k, v in data.items() if k in _NET_FIELDS})
    except (TypeError, ValueError) as exc:
        raise InputError(source, f"invalid model option ({exc})") from None


def model_parts(config: dict | str | os.PathLike, with_genotype: bool = True) -> tuple[NetConfig, Genotype | None]:
    """(NetConfig, Genotype) of a model config (dict or YAML path; its ``genotype`` through
    :meth:`Genotype.resolve`, relative to the file's folder). Bad options are InputErrors."""
    data, path = read_config(config)
    net = net_config(data, path)
    if not with_genotype:
        return net, None
    try:
        genotype = Genotype.resolve(data.get("genotype"), path.parent if path else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"invalid genotype ({exc})") from None
    return net, genotype


def build_stereo_net(config: dict | str | os.PathLike) -> StereoNet:
    """The derived network described by ``config`` (dict or YAML path)."""
    net, genotype = model_parts(config)
    return StereoNet(genotype, net)


def build_search_net(config: dict | str | os.PathLike) -> SearchStereoNet:
    """The supernet described by ``config``: NetConfig fields plus feature_layers/matching_layers."""
    data, path = read_config(config)
    return SearchStereoNet(int(data.get("feature_layers", 2)), int(data.get("matching_layers", 4)), net_config(data, path))


def save_checkpoint(model: StereoNet, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Weights + config + genotype in one file (written atomically), loadable anywhere."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.as_dict(),
        "genotype": model.genotype.to_data(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                         what: str = "checkpoint") -> Any:
    """The contents of a torch checkpoint file, read as data only (``weights_only=True``).

    A file whose pickle holds arbitrary Python objects (which could run code on load) is
    refused without running anything; a damaged or truncated file is an InputError too.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the refused class ("unsupported GLOBAL ...", "Unsupported global: ...");
        # any other unpickling failure is a damaged file
        if "global" in str(exc).lower():
            raise InputError(path, f"holds arbitrary Python objects, not only data; refused (evstereo reads "
                                   f"{what}s as data and never runs code from them)") from None
        raise InputError(path, f"cannot be read as a {what} (damaged or truncated: {_first_line(exc)})") from None
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise InputError(path, f"cannot be read as a {what} (damaged or truncated: "
                               f"{exc.__class__.__name__}: {_first_line(exc)})") from None


def checkpoint_extra(path: str | os.PathLike) -> dict:
    """The ``extra`` record of ``save_checkpoint``'s file (epochs, steps, DGS history, ...; empty
    for a Lightning checkpoint or a file without one)."""
    payload = read_checkpoint_file(path)
    extra = payload.get("extra") if isinstance(payload, dict) else None
    return dict(extra) if isinstance(extra, dict) else {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else exc.__class__.__name__


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> StereoNet:
    """Rebuild a network from ``save_checkpoint``'s file or a Lightning checkpoint of apps.train."""
    path = Path(path)
    payload = read_checkpoint_file(path, map_location)
    if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
        missing = [k for k in ("config", "genotype", "state_dict") if k not in payload]
        if missing:
            raise InputError(path, f"is an evstereo checkpoint without its {' and '.join(missing)}")
        config, genotype, state = payload["config"], payload["genotype"], payload["state_dict"]
    elif isinstance(payload, dict) and "hyper_parameters" in payload and "state_dict" in payload:
        hp = payload["hyper_parameters"]
        if not isinstance(hp, dict) or "net" not in hp:
            raise InputError(path, "is a Lightning checkpoint but not of an evstereo stereo network")
        if hp.get("genotype") is None:
            raise InputError(path, "is a Lightning checkpoint without a genotype (a search checkpoint? "
                                   "decode it with apps.search, then train the genotype)")
        config, genotype = hp["net"], hp["genotype"]
        state = {k[len("model."):]: v for k, v in payload["state_dict"].items() if k.startswith("model.")}
    else:
        raise InputError(path, "is not an evstereo checkpoint")
    if not isinstance(config, dict):
        raise InputError(path, "checkpoint config is not a mapping of model options")
    if genotype is None:
        raise InputError(path, "checkpoint has no genotype")
    try:
        genotype = Genotype.resolve(genotype)
    except (InputError, KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"checkpoint has an invalid genotype ({_first_line(exc)})") from None
    model = StereoNet(genotype, net_config(config, f"{path} (its config)"))
    if not isinstance(state, dict):
        raise InputError(path, "checkpoint weights are not a mapping of tensors")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the network it describes ({str(exc).splitlines()[0]})") from None
    return model.eval()
