"""Package layout (metadata is in pyproject.toml).

The repository keeps the command-line programs in top-level folders `apps/` and `data_tools/`
(so `python -m apps.train` works from a checkout) and the YAML configs in `configs/`; the wheel
installs them inside the package as `evstereo.apps`, `evstereo.data_tools` and
`evstereo/configs/`, so they never clash with another project's top-level `apps` package.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

MAPPED = {"evstereo.apps": "apps", "evstereo.data_tools": "data_tools", "evstereo.configs": "configs"}
# each configs/ subfolder is a data-only package (setuptools wants every importable folder listed)
CONFIG_DIRS = {f"evstereo.configs.{d.name}": f"configs/{d.name}" for d in sorted(Path("configs").iterdir()) if d.is_dir()}

setup(
    # namespace discovery: data-only folders (checkpoints/) are packages too
    packages=find_namespace_packages(include=["evstereo", "evstereo.*"], exclude=["*__pycache__*"])
    + list(MAPPED) + list(CONFIG_DIRS),
    package_dir={**MAPPED, **CONFIG_DIRS},
    package_data={"evstereo.checkpoints": ["*.pt"], "evstereo.simulation": ["*.yaml"],
                  **{name: ["*.yaml"] for name in CONFIG_DIRS}},
)
