"""`NLIRG_WHEELS=DIR ./run`: the project installs with no index from a wheelhouse, on a "box" whose Python already has
torch and the rest. The box is simulated: a venv over a folder that shows this venv's packages but one (plotext),
and a wheelhouse holding that one (and setuptools, which a new venv has too old), rebuilt from their installed
files; nothing is downloaded."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow

CARRIED = "plotext"
"""The one dependency the simulated box lacks (pure Python, small)."""


def wheel_from_installed(name: str, dest: Path) -> Path:
    """A wheel of the installed distribution `name`, made from its files (RECORD lists them)."""
    dist = importlib.metadata.distribution(name)
    wheel = dest / f"{name}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        for file in dist.files or []:
            if "__pycache__" in file.parts or file.parts[0] == ".." or file.name in ("RECORD", "INSTALLER"):
                continue
            whl.write(file.locate(), str(file))
        info = f"{dist.metadata['Name']}-{dist.version}.dist-info"
        whl.writestr(f"{info}/RECORD", "")
    return wheel


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(a venv whose 'system' packages are this venv's minus plotext and the project, the environment to run in)."""
    root = tmp_path_factory.mktemp("box")
    site = root / "box-site"
    site.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        low = entry.name.lower()
        if low.startswith((CARRIED, "nlirg", "__editable__")) or low.endswith(".pth"):
            continue
        (site / entry.name).symlink_to(entry)
    venv = root / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    probe = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run([str(venv / "bin/python"), "-c", probe], check=True, capture_output=True,
                             text=True).stdout.strip()
    Path(purelib, "box.pth").write_text(f"{site}\n")
    # No index and no configured links: only the wheelhouse counts (this machine's pip config names its own).
    env = {**os.environ, "PY": sys._base_executable, "VENV": str(venv), "PIP_CONFIG_FILE": os.devnull,
           "PIP_NO_INDEX": "1", "PYTHONPATH": ""}
    env.pop("PIP_FIND_LINKS", None)
    return venv, env


def from_wheels(dir_: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "tools/venv_from_wheels.sh"), str(dir_)], env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_wheelhouse_without_a_needed_package_stops_in_one_line_naming_it(box, tmp_path) -> None:
    venv, env = box
    wheel_from_installed(CARRIED, tmp_path)  # but not setuptools, which the new venv has too old to build with
    done = from_wheels(tmp_path, env)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (f"run: setuptools>=68 is missing from {tmp_path}: make it again with "
                                            "./run wheels")


def test_the_project_installs_from_the_wheelhouse_alone_on_the_boxs_own_torch(box, tmp_path) -> None:
    venv, env = box
    wheel_from_installed("setuptools", tmp_path)
    wheel_from_installed(CARRIED, tmp_path)
    done = from_wheels(tmp_path, env)
    assert done.returncode == 0, done.stderr
    probe = ("import plotext, torch, trainer_core, nlirg_tui; "
             "print(plotext.__file__); print(torch.__file__); print(trainer_core.__file__)")
    out = subprocess.run([str(venv / "bin/python"), "-c", probe], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0].startswith(str(venv))  # installed from the wheelhouse into the venv
    assert not out[1].startswith(str(venv))  # torch: the box's own
    assert Path(out[2]).is_relative_to(REPO)  # the project: editable, from this checkout
    assert subprocess.run([str(venv / "bin/nlirg"), "--help"], env=env, capture_output=True).returncode == 0


def test_a_python_without_torch_is_refused_in_one_line(tmp_path) -> None:
    wheel_from_installed(CARRIED, tmp_path)
    env = {**os.environ, "PY": sys._base_executable, "VENV": str(tmp_path / "venv"), "PYTHONPATH": ""}
    done = from_wheels(tmp_path, env)
    if done.returncode == 0 or "import torch" not in done.stderr:
        pytest.skip("the base Python here has torch")
    assert done.returncode == 2 and "cannot import torch" in done.stderr and not (tmp_path / "venv").exists()
