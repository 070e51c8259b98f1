"""Finding runs on disk, telling live ones from dead ones, and a small synchronous client for the CLI.

Torch-free: `nlirg runs/attach/stop/...` import this without importing torch.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_core import protocol
from trainer_core.rundir import CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE, TRAINER_FILE, read_json

LIVE_STATUSES = ("starting", "running", "paused")
"""trainer.json statuses that mean a trainer process should exist; with its pid gone the run is `dead`."""
TAIL_BYTES = 256 * 1024


class RunNotFound(ValueError):
    """RUN names no run, or several; the message says which and what to type instead."""


class NotLive(RuntimeError):
    """The run has no trainer to talk to (finished or dead)."""


@dataclass
class RunInfo:
    run_dir: Path
    name: str
    status: str
    """trainer.json's status, or `dead` when it claims to run but its pid is gone."""
    step: int | None
    total_steps: int | None
    loss: float | None
    started: float | None
    host: str | None
    pid: int | None
    socket: str | None

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


def pid_alive(pid: Any) -> bool:
    """True while `pid` runs and is not a zombie (a SIGKILLed child not yet reaped counts as gone)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process holds the pid now: not our trainer
    try:
        # The state letter follows the parenthesised command name, which may itself hold spaces.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all we have


def run_info(run_dir: Path) -> RunInfo:
    info = read_json(run_dir / TRAINER_FILE) or {}
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    status = info.get("status", "created")
    pid = info.get("pid")
    if status in LIVE_STATUSES and not pid_alive(pid):
        status = "dead"
    step, total, loss = summary.get("steps"), summary.get("total_steps"), summary.get("final_loss")
    last = last_step_event(run_dir / EVENTS_FILE)
    if last is not None and (step is None or last.get("step", -1) >= step):
        step, total, loss = last.get("step"), last.get("total_steps", total), last.get("loss")
    return RunInfo(run_dir=run_dir, name=info.get("name") or run_dir.name, status=status, step=step,
                   total_steps=total, loss=loss, started=info.get("started"), host=info.get("host"),
                   pid=pid if isinstance(pid, int) else None, socket=info.get("socket"))


def last_step_event(path: Path) -> dict[str, Any] | None:
    """The newest `step` event in the tail of an events.jsonl (reads at most TAIL_BYTES)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read()
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        if b'"type": "step"' not in line[:60] and b'"type":"step"' not in line[:60]:
            continue
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def find_runs(root: str | Path) -> list[RunInfo]:
    """Runs under `root`, live ones first, then newest first."""
    base = Path(root).expanduser()
    if not base.is_dir():
        return []
    runs = [run_info(p.resolve()) for p in base.iterdir() if _is_run_dir(p)]
    return sorted(runs, key=lambda r: (not r.live, -(r.started or 0.0), r.run_dir.name))


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / TRAINER_FILE).is_file() or (path / CONFIG_FILE).is_file())


def resolve_run(spec: str, root: str | Path = "runs") -> Path:
    """RUN as a run directory, a run folder name, or a unique prefix of one under `root`.

    Several matches are fine when exactly one of them is live (`nlirg stop demo` means the running demo).
    """
    direct = Path(spec).expanduser()
    if _is_run_dir(direct):
        return direct.resolve()
    base = Path(root).expanduser()
    if not base.is_dir():
        raise RunNotFound(f"{spec}: no such run directory, and no runs folder {base} (use --root DIR)")
    names = [p for p in base.iterdir() if _is_run_dir(p)]
    exact = [p for p in names if p.name == spec]
    matches = exact or [p for p in names if p.name.startswith(spec)]
    if not matches:
        raise RunNotFound(f"{spec}: no run of that name under {base}; `nlirg runs --root {base}` lists them")
    if len(matches) > 1:
        live = [p for p in matches if run_info(p).live]
        if len(live) == 1:
            return live[0].resolve()
        shown = ", ".join(sorted(p.name for p in matches)[:5])
        raise RunNotFound(f"{spec}: matches {len(matches)} runs ({shown}); give more of the name")
    return matches[0].resolve()


# ---------------------------------------------------------------------------------------------- client
class LiveClient:
    """A blocking client of one trainer's socket (the CLI's; the TUI has its own async one)."""

    def __init__(self, path: str | Path, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self._lines = protocol.LineReader()
        self._ready: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.hello = self.read()
        if self.hello.get("type") != "hello":
            raise protocol.ProtocolError(f"expected hello, got {self.hello.get('type')!r}")

    @classmethod
    def for_run(cls, run_dir: Path, timeout: float = 10.0, wait_s: float = 60.0) -> LiveClient:
        """Connect to a run's trainer, or raise NotLive saying why not.

        A trainer that is still starting (importing torch, before its socket exists) is waited for up to
        `wait_s`: `nlirg stop` right after `nlirg train --detach` must reach it.
        """
        deadline = time.monotonic() + wait_s
        while True:
            info = run_info(run_dir)
            if not info.live:
                raise NotLive(f"{info.name} is not running (status {info.status})")
            path = info.socket or str(protocol.socket_path(run_dir))
            try:
                return cls(path, timeout)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise NotLive(f"{info.name}: the trainer (pid {info.pid}) has no live socket at {path}; "
                                  "see its trainer.log") from None
            time.sleep(0.2)

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(protocol.encode(message))

    def read(self) -> dict[str, Any]:
        """The next message; raises EOFError when the trainer closes the connection."""
        while not self._ready:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("the trainer closed the connection")
            self._ready.extend(protocol.decode(line) for line in self._lines.feed(data))
        return self._ready.pop(0)

    def messages(self) -> Iterator[dict[str, Any]]:
        """Messages until the connection closes."""
        while True:
            try:
                yield self.read()
            except EOFError:
                return

    def stream(self, from_seq: int = 0) -> Iterator[dict[str, Any]]:
        """Events from `from_seq` (replayed, then live) until `end` or the connection closes."""
        self.send(protocol.replay(from_seq))
        for msg in self.messages():
            if protocol.is_event(msg):
                yield msg
                if msg["type"] == "end":
                    return

    def command(self, name: str, args: dict[str, Any] | None = None, timeout: float = 120.0) -> dict[str, Any]:
        """Send a command and wait for its ack (events that arrive meanwhile are kept for `read`)."""
        cmd_id = f"cli-{os.getpid()}-{next(self._ids)}"
        self.send(protocol.command(cmd_id, name, args))
        deadline = time.monotonic() + timeout
        kept: list[dict[str, Any]] = []
        try:
            while time.monotonic() < deadline:
                msg = self.read()
                if msg.get("type") == "ack" and msg.get("id") == cmd_id:
                    return msg
                if msg.get("type") == "end":
                    kept.append(msg)
                    return {"type": "ack", "id": cmd_id, "ok": False, "applied_at_step": msg.get("summary", {})
                            .get("steps"), "error": f"the run ended ({msg.get('status')}) before the command applied"}
                kept.append(msg)
            raise TimeoutError(f"no ack for {name} within {timeout:g} s (is the trainer paused in a long save?)")
        finally:
            self._ready[:0] = kept

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LiveClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
