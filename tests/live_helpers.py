"""Helpers for the live-link tests: real detached trainers on builtin:tiny, their sockets, waiting for states."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.helpers import TINY, make_config, write_alpaca
from trainer_core.live import protocol
from trainer_core.live.events import read_events
from trainer_core.live.rundir import read_json

LONG = 100_000
"""max_steps of runs that a test stops itself (long enough never to end on their own)."""
WAIT_S = 120.0
"""Upper bound on waiting for a state; never an assertion about speed."""


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT_S, every: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def private_runtime_dir() -> str:
    """A short XDG_RUNTIME_DIR of our own, so tests never meet other runs' sockets."""
    return tempfile.mkdtemp(prefix="xdg-", dir="/tmp")


def live_env(runtime_dir: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "XDG_RUNTIME_DIR": runtime_dir, **extra}


def train_args(data: Path, root: Path, max_steps: int = LONG, extra: list[str] | None = None) -> list[str]:
    sets = [*TINY, f"data.train={data}", f"output.root={root}", "training.save_every=0", "training.eval_every=0",
            "data.eval_fraction=0", *(extra or [])]
    return [a for s in sets for a in ("--set", s)] + ["--max-steps", str(max_steps)]


def nlirg(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("nlirg")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def start_detached(tmp: Path, env: dict[str, str], root: Path | None = None, max_steps: int = LONG,
                   extra: list[str] | None = None) -> Path:
    """`nlirg train --detach` (the real CLI); returns the run directory it printed last."""
    data = tmp / "train.jsonl"
    if not data.exists():
        write_alpaca(data, n=24)
    root = root or tmp / "runs"
    out = nlirg("train", *train_args(data, root, max_steps, extra), "--detach", cwd=tmp, env=env)
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip().splitlines()[-1])


def trainer_json(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / "trainer.json") or {}


def wait_for_socket(run_dir: Path) -> Path:
    return Path(wait_for(lambda: trainer_json(run_dir).get("socket"), f"a socket in {run_dir}/trainer.json"))


def wait_for_step(run_dir: Path, step: int) -> None:
    wait_for(lambda: any(e["type"] == "step" and e["step"] >= step for e in read_events(run_dir / "events.jsonl")),
             f"step {step} in {run_dir.name}", every=0.1)


def wait_for_exit(pid: int) -> None:
    """Wait for a detached trainer (not our child) to be gone."""
    from trainer_core.live.processes import pid_alive

    wait_for(lambda: not pid_alive(pid), f"pid {pid} to exit", every=0.1)


def terminate(run_dir: Path) -> None:
    """Leave no trainer behind, whatever the test did."""
    pid = trainer_json(run_dir).get("pid")
    from trainer_core.live.processes import pid_alive

    if isinstance(pid, int) and pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


class RawClient:
    """A bare socket speaking protocol lines, to send anything at all (valid or not)."""

    def __init__(self, path: Path, timeout: float = 60.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.reader = protocol.LineReader()
        self.buffered: list[dict[str, Any]] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps({"v": 1, **obj}).encode() + b"\n")

    def read(self) -> dict[str, Any] | None:
        """The next message, or None once the server closed the connection."""
        while not self.buffered:
            try:
                data = self.sock.recv(1 << 16)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.buffered.extend(json.loads(line) for line in self.reader.feed(data))
        return self.buffered.pop(0)

    def read_until(self, match: Callable[[dict[str, Any]], bool]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Read until a message matches; return it and everything before it."""
        seen = []
        while True:
            msg = self.read()
            assert msg is not None, f"connection closed before the expected message; saw {[m['type'] for m in seen]}"
            if match(msg):
                return msg, seen
            seen.append(msg)

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def long_detached_run(tmp: Path, env: dict[str, str], root: Path | None = None) -> Iterator[SimpleNamespace]:
    """A long-running detached trainer (run_dir, socket, env, tmp) for a module of tests; stopped afterwards,
    checking that nothing the tests did killed it and that its history has no gap."""
    run_dir = start_detached(tmp, env, root=root)
    try:
        sock = wait_for_socket(run_dir)
        wait_for_step(run_dir, 1)
        yield SimpleNamespace(run_dir=run_dir, socket=sock, env=env, tmp=tmp)
        from trainer_core.live.client import LiveClient

        with LiveClient(sock) as client:
            assert client.command("stop")["ok"]
        wait_for_exit(trainer_json(run_dir)["pid"])
    finally:
        terminate(run_dir)
    events = read_events(run_dir / "events.jsonl")
    assert events[-1]["type"] == "end" and events[-1]["status"] == "stopped", "the tests never killed the trainer"
    assert [e["seq"] for e in events] == list(range(len(events)))


def end_processes_under(folder: Path, grace_s: float = 30.0) -> list[str]:
    """Every process whose command line names a path under `folder` (a trainer, a DeepSpeed launcher or rank, a
    scorer), ended: SIGTERM, then SIGKILL after `grace_s`. Returns what was found (a test that left it behind)."""
    import psutil

    prefix = str(folder)
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid != os.getpid() and any(arg.startswith(prefix) or f"={prefix}" in arg
                                           for arg in proc.info["cmdline"] or []):
            found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(found, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return [" ".join(p.info["cmdline"] or [])[:200] for p in found]


def server_owner(run_dir: Path, events: Any, total_steps: int, cfg: Any = None, status: str = "running",
                 ) -> SimpleNamespace:
    """What `LiveServer` reads of a trainer, for a real server in the test's process (no training loop)."""
    from trainer_core.live.control import CommandQueue

    return SimpleNamespace(run_dir=run_dir, events=events, commands=CommandQueue(), status=status, step=0,
                           total_steps=total_steps, cfg=cfg if cfg is not None else make_config([*TINY]))
