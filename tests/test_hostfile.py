"""The hostfile + SSH launch (`distributed.hostfile`) refuses in one line, exit 2, before a run directory exists:
a host that does not resolve, no ssh or pdsh on PATH, a host that does not answer SSH, other code on a host.

No host here answers SSH, so the code check runs through an `ssh` stand-in that runs the remote command on this
machine (with another copy of the workbench for one host); everything else is the real thing."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tests.helpers import TINY, make_config, nlirg_cli, write_alpaca
from trainer_core.live.hostfile import HostfileError, check_hostfile_launch

DS = ["distributed.backend=deepspeed"]
REAL = {"ssh": shutil.which("ssh")}


def hostfile_config(tmp_path: Path, lines: str):
    hostfile = tmp_path / "hostfile"
    hostfile.write_text(lines)
    return make_config([*TINY, *DS, f"distributed.hostfile={hostfile}"]), hostfile


def tool_dir(tmp_path: Path, **tools: str) -> Path:
    """A PATH folder holding only `tools` (name -> shell script body, or "real" for this machine's program)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, body in tools.items():
        path = folder / name
        if body == "real":
            path.symlink_to(REAL[name])
        else:
            path.write_text(f"#!/bin/sh\n{body}\n")
            path.chmod(0o755)
    return folder


def refused(cfg) -> str:
    with pytest.raises(HostfileError) as exc:
        check_hostfile_launch(cfg)
    return str(exc.value)


def test_a_host_that_does_not_resolve_is_refused_by_train_and_check_before_the_run_exists(tmp_path: Path) -> None:
    data = write_alpaca(tmp_path / "train.jsonl", n=8)
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("# two nodes\nlocalhost slots=1\nno-such-node.invalid slots=1\n")
    sets = [*TINY, *DS, f"data.train={data}", f"distributed.hostfile={hostfile}", f"output.root={tmp_path / 'runs'}"]
    out = nlirg_cli("train", *[a for s in sets for a in ("--set", s)], cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    error = out.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: distributed.hostfile ({hostfile}) line 3: host no-such-node.invalid does not "
                            "resolve"), error
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    checked = nlirg_cli("check", *[a for s in sets for a in ("--set", s)], cwd=tmp_path)
    assert checked.returncode == 2
    assert f"  - distributed.hostfile ({hostfile}) line 3: host no-such-node.invalid does not resolve" in checked.stderr


@pytest.mark.skipif(REAL["ssh"] is None, reason="no ssh client here")
def test_missing_ssh_or_pdsh_and_bad_lines_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, hostfile = hostfile_config(tmp_path, "localhost slots=1\n127.0.0.1 slots=1\n")
    monkeypatch.setenv("PATH", str(tool_dir(tmp_path)))
    assert refused(cfg).startswith(f"distributed.hostfile ({hostfile}): no `ssh` on PATH")
    monkeypatch.setenv("PATH", str(tool_dir(tmp_path, ssh="real")))
    error = refused(cfg)
    assert error.startswith(f"distributed.hostfile ({hostfile}): no `pdsh` on PATH") and "--nnodes N" in error
    hostfile.write_text("localhost slots=1\nnode2 slots=four\n")
    assert refused(cfg) == f"distributed.hostfile ({hostfile}) line 2: 'node2 slots=four' is not `HOST slots=N`"
    cfg.distributed.include = "node9:0"
    hostfile.write_text("localhost slots=1\n")
    assert refused(cfg) == f"distributed.include names node9, which distributed.hostfile ({hostfile}) does not list"


@pytest.mark.skipif(REAL["ssh"] is None, reason="no ssh client here")
def test_a_host_that_does_not_answer_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 22)) == 0:
            pytest.skip("an SSH server listens here: no host refuses the connection")
    cfg, _ = hostfile_config(tmp_path, "127.0.0.1 slots=1\nlocalhost slots=1\n")
    monkeypatch.setenv("PATH", str(tool_dir(tmp_path, ssh="real", pdsh="exit 1")))
    error = refused(cfg)
    assert error.startswith("host 127.0.0.1 (hostfile line 1) does not answer SSH without a password (ssh: connect "
                            "to host 127.0.0.1 port 22"), error
    assert "ssh-copy-id 127.0.0.1" in error and "\n" not in error


def test_other_code_on_a_host_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The other "node" has the workbench with one changed file; its ssh stand-in runs the remote command here.
    other = tmp_path / "other"
    here = Path(__file__).resolve().parents[1]
    for package in ("trainer_core", "nlirg_tui"):
        shutil.copytree(here / package, other / package, ignore=shutil.ignore_patterns("__pycache__"))
    with (other / "trainer_core" / "live" / "nodes.py").open("a") as fh:
        fh.write("\n# a local change\n")
    stand_in = ('cd /\nwhile [ "$1" = -o ]; do shift 2; done\nhost=$1; shift\n'
                f'[ "$host" = 127.0.0.1 ] && export PYTHONPATH={other}\nexec /bin/sh -c "$*"')
    cfg, _ = hostfile_config(tmp_path, "localhost slots=1\n127.0.0.1 slots=1\n")
    monkeypatch.setenv("PATH", str(tool_dir(tmp_path, ssh=stand_in, pdsh="exit 1")))
    error = refused(cfg)
    assert error.startswith("host 127.0.0.1 (hostfile line 2) has other workbench code ("), error
    assert error.endswith("here); install the same version on every node")
    (tmp_path / "hostfile").write_text("localhost slots=1\n")  # the same code: nothing to refuse
    check_hostfile_launch(cfg)


def test_the_workbench_refuses_the_same_launch_without_making_a_run(tmp_path: Path) -> None:
    from nlirg_tui.launching import LaunchError, launch_config_file
    from trainer_core.config import save_config

    data = write_alpaca(tmp_path / "train.jsonl", n=8)
    cfg, hostfile = hostfile_config(tmp_path, "localhost slots=1\nno-such-node.invalid slots=1\n")
    cfg.data.train = [str(data)]
    save_config(cfg, tmp_path / "nodes.yaml")
    with pytest.raises(LaunchError, match="line 2: host no-such-node.invalid does not resolve"):
        launch_config_file(tmp_path / "nodes.yaml", tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
