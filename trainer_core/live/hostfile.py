"""The hostfile + SSH launch (`distributed.hostfile`), checked before a run directory exists.

DeepSpeed's launcher reaches the first host through SSH and starts every node through `pdsh` over passwordless
SSH; its own failures are tracebacks, or ranks that wait for a node that never starts. Each problem here is one
line naming the host and what to do (`nlirg train` exits 2): a line that is not `HOST slots=N`, a host that does
not resolve, no `pdsh` or `ssh` on PATH, a host that does not answer SSH without a password, a host without this
environment's Python, or with other workbench code. Torch-free.
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from trainer_core.config import RunConfig
from trainer_core.live.nodes import code_version

SSH_CONNECT_S = 10
"""How long a host may take to accept the SSH connection (`ssh -o ConnectTimeout`)."""
SSH_WAIT_S = 60.0
"""The bound on one host's whole check (connect, then Python reads the workbench's source)."""
NO_SSH = "or launch one node at a time without SSH: nlirg train CONFIG --nnodes N --node-rank R ... (docs/deepspeed.md)"
LINE = re.compile(r"^(\S+)\s+slots=(\d+)\s*$")


class HostfileError(Exception):
    """A hostfile launch that cannot start: one line naming the file, line or host and what to do (exit 2)."""


@dataclass(frozen=True)
class Host:
    name: str
    line: int
    """Its line in the hostfile (1-based), for the message."""


def read_hostfile(path: Path) -> list[Host]:
    """The hosts of a DeepSpeed hostfile (`HOST slots=N` lines; blank lines and `#` comments skipped)."""
    hosts: list[Host] = []
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        if match is None:
            raise HostfileError(f"distributed.hostfile ({path}) line {number}: {line!r} is not `HOST slots=N`")
        if any(h.name == match[1] for h in hosts):
            raise HostfileError(f"distributed.hostfile ({path}) line {number}: {match[1]} is listed twice")
        hosts.append(Host(match[1], number))
    if not hosts:
        raise HostfileError(f"distributed.hostfile ({path}): no `HOST slots=N` line")
    return hosts


def active_hosts(hosts: list[Host], include: str | None, path: Path) -> list[Host]:
    """The hosts `distributed.include` keeps (`node1:0,1@node2`), all of them without it."""
    if not include:
        return hosts
    named = [part.split(":")[0] for part in include.split("@") if part]
    by_name = {h.name: h for h in hosts}
    unknown = [n for n in named if n not in by_name]
    if unknown:
        raise HostfileError(f"distributed.include names {unknown[0]}, which distributed.hostfile ({path}) does not "
                            "list")
    return [by_name[n] for n in named]


def check_hostfile_launch(cfg: RunConfig, which: Callable[[str], str | None] = shutil.which) -> None:
    """Raise HostfileError (one line) unless DeepSpeed's hostfile launch of `cfg` can start every node."""
    if cfg.distributed.backend != "deepspeed" or not cfg.distributed.hostfile:
        return
    path = Path(cfg.distributed.hostfile).expanduser().resolve()
    hosts = active_hosts(read_hostfile(path), cfg.distributed.include, path)
    for host in hosts:
        _resolves(host, path)
    tools = ["ssh", "pdsh"] if len(hosts) > 1 else ["ssh"]  # the launcher ssh-checks the first host even alone
    for tool in tools:
        if which(tool) is None:
            raise HostfileError(f"distributed.hostfile ({path}): no `{tool}` on PATH, which DeepSpeed's hostfile "
                                f"launch needs to start the other nodes; install it (e.g. apt install {tool}), "
                                f"{NO_SSH}")
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        problems = list(pool.map(_answers, hosts))
    for problem in problems:
        if problem:
            raise HostfileError(problem)


def _resolves(host: Host, path: Path) -> None:
    try:
        socket.getaddrinfo(host.name, None)
    except OSError as exc:
        raise HostfileError(f"distributed.hostfile ({path}) line {host.line}: host {host.name} does not resolve "
                            f"({exc.strerror or exc}); fix the name, or this machine's DNS or /etc/hosts") from None


def _answers(host: Host) -> str | None:
    """SSH without a password to `host`, and the workbench's code there (the same Python path): a problem, or None."""
    probe = "from trainer_core.live.nodes import code_version; print(code_version())"
    remote = shlex.join([sys.executable, "-c", probe])
    cmd = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_CONNECT_S}", host.name, remote]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=SSH_WAIT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return (f"host {host.name} (hostfile line {host.line}) did not answer over SSH within {SSH_WAIT_S:.0f} s; "
                f"{NO_SSH}")
    said = (out.stderr.strip().splitlines() or ["no message"])[-1]
    if out.returncode == 255:  # ssh's own failure: no connection, no key, host key refused
        return (f"host {host.name} (hostfile line {host.line}) does not answer SSH without a password ({said}); set "
                f"up passwordless SSH (ssh-copy-id {host.name}), {NO_SSH}")
    if out.returncode != 0:
        return (f"host {host.name} (hostfile line {host.line}) cannot run this environment's Python with the "
                f"workbench ({sys.executable}: {said}); every node needs the same environment at the same path")
    theirs, mine = out.stdout.strip(), code_version()
    if theirs != mine:
        return (f"host {host.name} (hostfile line {host.line}) has other workbench code ({theirs} there, {mine} "
                "here); install the same version on every node")
    return None
