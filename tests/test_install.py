"""A real `pip install .` into a fresh virtual environment: the package, its tools, the shipped
checkpoint and the configs all come from the installed wheel, none from the checkout."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with evstereo installed from the checkout; the dependencies (torch, ...)
    are borrowed from this interpreter's site-packages by a plain path entry (no reinstall)."""
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env)
    py = env / "bin" / "python"
    purelib = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                           text=True).strip())
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "borrowed_deps.pth").write_text("\n".join(deps) + "\n")  # paths only: no editable finder runs
    # build from a copy, so the build leaves nothing in the checkout and sees no stale build/
    src = tmp_path_factory.mktemp("src") / "evstereo"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "data", "runs", "build", "*.egg-info",
                                                             "__pycache__", "tests", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--no-build-isolation", str(src)], check=True, capture_output=True, text=True)
    return env


def _run(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(env / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_no_top_level_apps_or_data_tools(installed):
    purelib = Path(subprocess.check_output([str(installed / "bin" / "python"), "-c",
                                            "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    names = {p.name for p in purelib.iterdir()}
    assert "evstereo" in names and "apps" not in names and "data_tools" not in names
    assert (purelib / "evstereo" / "apps" / "train.py").is_file()
    assert (purelib / "evstereo" / "checkpoints" / "fast.pt").is_file()
    assert (purelib / "evstereo" / "configs" / "train" / "tiny.yaml").is_file()


HELP_ALL = """
import contextlib, io, json
import evstereo.apps.cli as cli
result = {}
for name in cli.SUBCOMMANDS:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = cli.main([name, "--help"])
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # an import that fails in the wheel
            code = repr(exc)
    result[name] = [code, "usage:" in out.getvalue()]
import evstereo.apps.train as train
result["_file"] = train.__file__
print(json.dumps(result))
"""


def test_every_subcommand_runs_from_the_wheel(installed, tmp_path):
    import json

    (tmp_path / "apps").mkdir()  # a user's own folder named apps/ must not shadow ours
    (tmp_path / "apps" / "__init__.py").write_text("raise ImportError('the user folder was imported')\n")
    r = _run(installed, "evstereo", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "subcommands:" in r.stdout, r.stderr
    r = _run(installed, "python", "-c", HELP_ALL, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert "/site-packages/evstereo/apps/" in result.pop("_file")
    for name, (code, usage) in result.items():
        if name == "bench":  # the benchmarks live in the checkout, not in the wheel: one line saying so
            assert code == 2, name
            continue
        assert code == 0 and usage, (name, code)


def test_a_job_end_to_end_with_the_shipped_checkpoint_and_configs(installed, tmp_path):
    r = _run(installed, "evstereo", "synth", "-q", "--out", "d", "--name", "r", "--seconds", "0.4", "--seed", "3",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _run(installed, "evstereo", "live", "d/r_data.hdf5", "--headless", "--out", "live", "--max-frames", "2", "-q",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "live" / "timings.json").is_file()
    code = ("from evstereo.resources import find_config; from evstereo.models import shipped_checkpoint;"
            "print(find_config('configs/model/fast.yaml')); print(shipped_checkpoint())")
    out = _run(installed, "python", "-c", code, cwd=tmp_path).stdout.split()
    assert all("/site-packages/evstereo/" in p for p in out), out


def test_find_config_outside_the_checkout(tmp_path, monkeypatch):
    from evstereo.resources import find_config

    monkeypatch.chdir(tmp_path)
    assert find_config("configs/train/tiny.yaml") == ROOT / "configs" / "train" / "tiny.yaml"
    (tmp_path / "configs" / "train").mkdir(parents=True)
    (tmp_path / "configs" / "train" / "tiny.yaml").write_text("seed: 1\n")  # the user's own copy wins
    assert find_config("configs/train/tiny.yaml") == Path("configs/train/tiny.yaml")
    assert find_config("configs/train/nope.yaml") == Path("configs/train/nope.yaml")
