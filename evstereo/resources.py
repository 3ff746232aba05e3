"""Files that ship with the package: the YAML configs and the shipped checkpoint.

In a checkout the configs are the repository's ``configs/`` folder; an installed wheel carries
the same files as ``evstereo/configs/`` (see setup.py). :func:`find_config` lets a user outside
the checkout write the README's paths as they are (``configs/train/tiny.yaml``): a relative
path that does not exist under the working directory but starts with ``configs/`` is looked up
among the packaged configs.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def configs_dir() -> Path | None:
    """The packaged configs folder (installed wheel), else the checkout's; None when neither exists."""
    for candidate in (PACKAGE_DIR / "configs", PACKAGE_DIR.parent / "configs"):
        if (candidate / "model").is_dir():
            return candidate
    return None


def find_config(path: str | os.PathLike) -> Path:
    """``path`` itself when it exists (or is absolute); otherwise, for ``configs/...``, the
    packaged file of that name when there is one; otherwise ``path`` unchanged (the caller
    reports it as missing)."""
    path = Path(path)
    if path.exists() or path.is_absolute() or not path.parts or path.parts[0] != "configs":
        return path
    base = configs_dir()
    if base is not None and (base.joinpath(*path.parts[1:])).exists():
        return base.joinpath(*path.parts[1:])
    return path
