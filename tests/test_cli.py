"""The one `evstereo` command, the fresh-machine set-up script and quiet start-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps import cli

ROOT = Path(__file__).resolve().parents[1]


def test_usage_lists_every_subcommand(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in ("synth", "inspect", "convert", "prepare", "search", "train", "evaluate", "live", "view", "bench"):
        assert f"\n  {name} " in out


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out and "--help" in out


def test_unknown_subcommand_is_one_line(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown subcommand 'trian'") and len(err.splitlines()) == 1


def test_console_script_runs_a_tool(tmp_path):
    exe = Path(sys.executable).with_name("evstereo")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "apps.cli"]
    r = subprocess.run(cmd + ["inspect", str(tmp_path / "missing.hdf5")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "missing.hdf5" in r.stderr


def test_ctrl_c_during_start_up_is_one_line():
    """SIGINT while the tool is still importing torch: one line, exit 130, no traceback."""
    p = subprocess.Popen([sys.executable, "-m", "apps.train", "--config", "configs/train/tiny.yaml",
                          "data.generate=[]", "out=/nonexistent-evstereo-run"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # inside the imports (they take seconds)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == ["interrupted"]


def _fake_bin(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)


def _system_packages(tmp_path: Path, uid: str, with_apt: bool) -> subprocess.CompletedProcess:
    """scripts/system-packages.sh on a 'bare machine': no libraries, no Xvfb."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_bin(bin_dir, "ldconfig", "exit 0")  # lists no library
    _fake_bin(bin_dir, "id", f"echo {uid}")
    if with_apt:
        _fake_bin(bin_dir, "apt-get", f'echo "$@" >> {tmp_path}/apt.log')
    for tool in ("sh", "grep", "echo", "true"):  # the few tools the script needs
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if real.startswith("/"):
            os.symlink(real, bin_dir / tool)
    return subprocess.run(["/bin/sh", str(ROOT / "scripts" / "system-packages.sh"), "test"], capture_output=True,
                          text=True, env={"PATH": str(bin_dir)})


def test_bare_machine_as_root_installs_the_packages(tmp_path):
    r = _system_packages(tmp_path, "0", with_apt=True)
    assert r.returncode == 0, r.stderr
    log = (tmp_path / "apt.log").read_text()
    assert "update" in log
    for pkg in ("libusb-1.0-0", "libgl1", "libegl1", "libglib2.0-0", "xvfb", "xauth"):
        assert pkg in log.splitlines()[-1]


def test_bare_machine_without_root_names_the_packages(tmp_path):
    r = _system_packages(tmp_path, "1000", with_apt=True)
    assert r.returncode == 1
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "sudo apt-get install" in line and "libusb-1.0-0" in line
    assert "xvfb" in line
    assert not (tmp_path / "apt.log").exists()


def test_numba_does_not_try_tbb_first():
    code = ("import evstereo, numba, numpy as np\n"
            "@numba.njit(parallel=True)\n"
            "def f(a):\n"
            "    s = 0.0\n"
            "    for i in numba.prange(a.size):\n"
            "        s += a[i]\n"
            "    return s\n"
            "f(np.ones(1000)); print(numba.config.THREADING_LAYER_PRIORITY[0], numba.threading_layer())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    first, used = r.stdout.split()
    assert first == "omp" and used != "tbb"
    assert "NumbaWarning" not in r.stderr
