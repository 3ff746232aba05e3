"""One ``--device`` for every tool: the same choices and the same check everywhere.

``cpu``, ``cuda`` (the first GPU), ``cuda:N`` or ``auto`` (CUDA when there is one, else the
CPU). A device this machine does not have is an :class:`InputError` naming the option, raised
before any model is loaded or any file is read.
"""

from __future__ import annotations

import re

from evstereo.errors import InputError

DEVICE_HELP = "where the model runs: cpu, cuda, cuda:N or auto (CUDA when available; default cpu)"
_DEVICE_RE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def resolve_device(name: str):
    """The ``torch.device`` for ``name``; InputError for an unknown or unavailable device."""
    import torch

    name = str(name).strip().lower()
    if not _DEVICE_RE.match(name):
        raise InputError(None, f"--device {name}: unknown device (choose cpu, cuda, cuda:N or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(None, f"--device {name}: CUDA is not available on this machine "
                                   f"(torch {torch.__version__}, {_cuda_note(torch)}); use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise InputError(None, f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def _cuda_note(torch) -> str:
    return "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no GPU found"


def add_device_option(parser, default: str = "cpu") -> None:
    """The ``--device`` option with the same choices and help in every tool."""
    parser.add_argument("--device", default=default, metavar="DEVICE", help=DEVICE_HELP.replace("cpu)", f"{default})"))
