"""A small blocking client of one trainer's socket: what the CLI, the tests and the benches use (the TUI has
its own async worker, `nlirg_tui.client`)."""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trainer_core.live import protocol
from trainer_core.live.runs import run_info
from trainer_core.live.sockets import socket_path


class NotLive(RuntimeError):
    """The run has no trainer to talk to (finished or dead)."""


class SocketBusy(NotLive):
    """The trainer is there but its socket's listen queue stayed full (a connect storm)."""


BUSY_WAIT_S = float(os.environ.get("NLIRG_LIVE_BUSY_WAIT", "10"))
"""How long a command retries a socket whose listen queue is full before it gives up with one line."""


NOTICE_AFTER_S = 2.0
"""How long `for_run` waits for a starting trainer's socket before it says that it waits."""


class LiveClient:
    """A blocking client of one trainer's socket (the CLI's; the TUI has its own async one)."""

    def __init__(self, path: str | Path, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self._lines = protocol.LineReader()
        self._ready: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.bad_lines = 0
        """Lines from the trainer that were not protocol messages, skipped."""
        self.hello = self.read()
        if self.hello.get("type") != "hello":
            raise protocol.ProtocolError(f"expected hello, got {self.hello.get('type')!r}")

    @classmethod
    def for_run(cls, run_dir: Path, timeout: float = 10.0, wait_s: float = 60.0,
                notice: Callable[[str], None] | None = None) -> LiveClient:
        """Connect to a run's trainer, or raise NotLive saying why not.

        A trainer that is still starting (importing torch, before its socket exists) is waited for up to
        `wait_s`: `nlirg stop` right after `nlirg train --detach` must reach it. `notice` hears, once, that the
        wait is on (after NOTICE_AFTER_S), so a wait is never silent.
        """
        started = time.monotonic()
        deadline = started + wait_s
        busy_deadline = time.monotonic() + min(wait_s, BUSY_WAIT_S)
        while True:
            info = run_info(run_dir)
            if not info.live:
                raise NotLive(f"{info.name} is not running (status {info.status})")
            path = info.socket or str(socket_path(run_dir))
            if notice is not None and time.monotonic() - started > NOTICE_AFTER_S:
                notice(f"waiting up to {wait_s:g} s for the trainer of {info.name} (pid {info.pid}) to open its socket")
                notice = None
            try:
                return cls(path, timeout)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise NotLive(f"{info.name}: the trainer (pid {info.pid}) has no live socket at {path}; "
                                  "see its trainer.log") from None
            except BlockingIOError:  # EAGAIN: its listen queue is full (a connect storm); it frees up quickly
                if time.monotonic() > busy_deadline:
                    raise SocketBusy(f"{info.name}: the trainer's socket stayed busy for {BUSY_WAIT_S:g} s (its "
                                     "listen queue is full: many clients connecting at once); try again") from None
            time.sleep(0.2)

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(protocol.encode(message))

    def read(self) -> dict[str, Any]:
        """The next message; raises EOFError when the trainer closes the connection."""
        while not self._ready:
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("the trainer closed the connection")
            messages, bad = self._lines.messages(data)  # a damaged events.jsonl line is skipped, never our end
            self._ready += messages
            self.bad_lines += bad
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
                    return protocol.ack(cmd_id, False, f"the run ended ({msg.get('status')}) before the command "
                                        "applied", msg.get("summary", {}).get("steps"))
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
