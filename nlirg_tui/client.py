"""The live link to one run: the only code that reads the trainer's socket or tails its events.jsonl.

`RunLink` is an invisible widget so its worker's messages bubble to the screen that mounts it. It connects
to the run's socket (trainer_core.live.protocol), asks for a replay of everything after the last event it has,
and posts batches of events. Without a socket (the trainer is still loading, or the run is over) it follows
`events.jsonl` instead, so a finished run replays from its directory alone. A dropped link is retried.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from pathlib import Path
from typing import Any

from textual import on, work
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from nlirg_tui.messages import CommandAcked, HelloReceived, LinkChanged, RunEvents
from trainer_core.live.processes import trainer_alive
from trainer_core.live.protocol import LineReader, ProtocolError, ack, command, decode_lines, encode, is_event, replay
from trainer_core.live.rundir import EVENTS_FILE, TRAINER_FILE, read_json
from trainer_core.live.runs import LIVE_STATUSES
from trainer_core.live.sockets import socket_path

RETRY_S = 1.0
BUSY_RETRY_S = 0.2
FILE_POLL_S = 0.3
READ_CHUNK = 1 << 16
FILE_CHUNK = 4 << 20


def connect_now(path: Path) -> socket.socket:
    """A connected, non-blocking socket to `path`. BlockingIOError when its listen queue is full (asyncio's own
    connect would take that for a connection in progress and hand back a socket that is not connected)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(str(path))
    except BaseException:
        sock.close()
        raise
    return sock


class LinkLost(Exception):
    """The socket closed or broke before the run ended."""


class RunLink(Widget):
    """Owns the socket of one run; its worker only posts messages (messages.py)."""

    DEFAULT_CSS = "RunLink { display: none; }"

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.last_seq = -1
        self.mode = "connecting"
        self._writer: asyncio.StreamWriter | None = None
        self._file_offset = 0
        self._ids = itertools.count(1)
        self._pending: dict[Any, str] = {}
        self._ended = False
        self.bad_lines = 0
        """Lines of the trainer's stream or events.jsonl that were no protocol message (a damaged file), skipped."""
        self._closed_why: str | None = None
        """The `error` (with no command id) that the trainer sent before it closed this link: why."""

    def on_mount(self) -> None:
        self.follow()

    # ------------------------------------------------------------------ commands
    def send(self, name: str, args: dict[str, Any] | None = None) -> str:
        """Send a command; its ack arrives as `CommandAcked`. Without a live link it is refused at once."""
        cmd_id = f"tui-{next(self._ids)}"
        if self._writer is None or self._writer.is_closing():
            reason = "the run has ended" if self._ended else "no live link to the trainer (it is not running)"
            self.post_message(CommandAcked(name, ack(cmd_id, False, reason, None)))
            return cmd_id
        self._pending[cmd_id] = name
        self._writer.write(encode(command(cmd_id, name, args or {})))
        return cmd_id

    async def flush(self) -> None:
        """Wait until what was sent left this process (before the app exits after a stop)."""
        if self.connected:
            await self._writer.drain()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    # ------------------------------------------------------------------ the worker
    @work(exclusive=True, group="run-link", exit_on_error=False)
    async def follow(self) -> None:
        while True:
            try:
                sock = connect_now(socket_path(self.run_dir))
            except BlockingIOError:  # its listen queue is full (a connect storm): it frees up quickly
                self._set_mode("waiting", "the trainer's socket is busy (many clients connecting); retrying")
                await asyncio.sleep(BUSY_RETRY_S)
                continue
            except OSError:
                if await self._follow_file_once():
                    return
                await asyncio.sleep(FILE_POLL_S)
                continue
            reader, writer = await asyncio.open_unix_connection(sock=sock)
            await self._follow_socket(reader, writer)
            return

    async def _follow_socket(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        writer.write(encode(replay(self.last_seq + 1)))
        self._set_mode("live")
        lines = LineReader()
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    if self._ended:
                        self._set_mode("replay", "the run has ended")
                        return
                    why, self._closed_why = self._closed_why, None
                    raise LinkLost(f"the trainer closed the connection: {why}" if why else
                                   "the trainer closed the connection")
                messages, bad = lines.messages(data)
                self._dispatch(messages)
                self._note_skipped(bad)
        finally:
            self._writer = None
            writer.close()

    def _dispatch(self, messages: list[dict[str, Any]]) -> None:
        """Post events in batches; a reply between events flushes the batch first, so order is kept."""
        batch: list[dict[str, Any]] = []
        for msg in messages:
            if is_event(msg):
                if msg["seq"] > self.last_seq:
                    self.last_seq = msg["seq"]
                    # A `status` after an `end` is a resumed trainer: the run is live again.
                    self._ended = msg["type"] == "end" or (self._ended and msg["type"] != "status")
                    batch.append(msg)
                continue
            if batch:
                self.post_message(RunEvents(batch))
                batch = []
            if msg["type"] == "hello":
                self.post_message(HelloReceived(msg))
            elif msg["type"] == "ack":
                self.post_message(CommandAcked(self._pending.pop(msg.get("id"), "command"), msg))
            elif msg["type"] == "error" and msg.get("id") is None:  # why the trainer is closing this link
                self._closed_why = str(msg.get("message"))
            elif msg["type"] == "error":
                name = self._pending.pop(msg.get("id"), "request")
                self.post_message(CommandAcked(name, ack(msg.get("id"), False, msg.get("message"), None)))
        if batch:
            self.post_message(RunEvents(batch))

    def _note_skipped(self, bad: int) -> None:
        """Say in the run's log that lines were skipped, once per read rather than per line. The note travels as a
        `log` event without a seq: the store shows it among the trainer's lines and never takes it for history."""
        if not bad:
            return
        self.bad_lines += bad
        note = (f"the live link skipped {bad} line(s) that are no protocol message ({self.bad_lines} in all): "
                f"a damaged {EVENTS_FILE}; the events around them are shown")
        self.post_message(RunEvents([{"type": "log", "level": "warning", "message": note}]))

    async def _follow_file_once(self) -> bool:
        """Read new lines of events.jsonl; True when nothing more will come (run ended or trainer gone)."""
        await self._drain_file()
        trainer = read_json(self.run_dir / TRAINER_FILE) or {}
        alive = trainer_alive(trainer)
        # An `end` followed by a live, starting trainer is `nlirg train --resume` bringing the run back: wait for it.
        if self._ended and not (alive and trainer.get("status") in LIVE_STATUSES):
            self._set_mode("replay", "the run has ended")
            return True
        if not alive:
            await self._drain_file()  # lines written just before it exited
            if self._ended:
                self._set_mode("replay", "the run has ended")
            else:
                self._set_mode("dead", f"the trainer (pid {trainer.get('pid')}) is not running; showing its last state")
            return True
        self._set_mode("waiting", "waiting for the trainer's socket")
        return False

    async def _drain_file(self) -> None:
        """Everything new in events.jsonl, a chunk at a time so a huge history never sits in memory at once."""
        while True:
            events, bad, more = self._read_file_chunk()
            self._dispatch(events)
            self._note_skipped(bad)
            if not more:
                return
            await asyncio.sleep(0)  # let the screen ingest between chunks

    def _read_file_chunk(self) -> tuple[list[dict[str, Any]], int, bool]:
        """(events, lines skipped as no protocol message, whether more is waiting) from the next chunk."""
        path = self.run_dir / EVENTS_FILE
        try:
            with path.open("rb") as fh:
                fh.seek(self._file_offset)
                data = fh.read(FILE_CHUNK)
        except FileNotFoundError:
            return [], 0, False
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self._file_offset += end
        events, bad = decode_lines(data[:end].splitlines())  # a torn line from a crash is skipped and counted
        return events, bad, len(data) == FILE_CHUNK and end > 0

    def _set_mode(self, mode: str, detail: str = "") -> None:
        if mode != self.mode:
            self.mode = mode
            self.post_message(LinkChanged(mode, detail))

    @on(Worker.StateChanged)
    def _on_worker_state(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "run-link" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        reason = str(error) if isinstance(error, (LinkLost, ProtocolError, OSError)) else repr(error)
        self.mode = "down"
        self.post_message(LinkChanged("down", f"link lost ({reason}); reconnecting"))
        self.set_timer(RETRY_S, self.follow)
