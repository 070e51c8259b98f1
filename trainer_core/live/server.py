"""The live socket server inside the trainer (rank 0): hello, replay + live events, commands (docs/design.md §4).

Threads, never the training thread: one accepts connections; one fans events out (joins the events.jsonl lines
of a short window and hands them to every streaming client as one message; the trainer's acks pass
through it too, so an ack is sent right behind the events emitted before it); each client has a reader
(parses and validates its lines against the protocol's schemas and limits, queues commands) and a writer (the
only one that sends on its socket; a replay goes out of events.jsonl by sendfile). The training thread's whole
cost per event is one put on the fan-out queue, whatever the number of clients (and an ack put per command).
A client whose queue fills up, or whose socket stays full past `SEND_TIMEOUT_S`, is dropped.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from trainer_core.live import protocol
from trainer_core.live.chat import MAX_WAITING
from trainer_core.live.control import Command, validate_command
from trainer_core.live.rundir import TRAINER_FILE, read_json, update_trainer_json
from trainer_core.live.slow_reader import Stalled, goodbye, send_tracked, stalled_in_file, too_slow
from trainer_core.live.sockets import ensure_socket_dir, peer_credentials, remove_stale_sockets, socket_path

log = logging.getLogger("trainer_core")

QUEUE_LIMIT = 4096
"""Messages waiting for one client; a client this far behind is dropped rather than slowing the trainer."""
SEND_TIMEOUT_S = float(os.environ.get("NLIRG_LIVE_SEND_TIMEOUT", "10"))
"""How long one write may wait on a client that does not read before that client is dropped."""
REBIND_CHECK_S = 2.0
"""How often the accept thread checks that the socket file still exists."""
PENDING_LIMIT = 32
"""Commands one client may have waiting for the next step boundary."""
BATCH_BYTES = 256 * 1024
"""The writer joins queued messages up to this size into one send (bursts go out faster)."""
FANOUT_WINDOW_S = 0.05
"""Events that arrive this close together go to each client as one message: one writer wake-up per client per
window instead of per event (the stream lags by at most the window)."""
FANOUT_WINDOW_PER_CLIENT_S = 0.0025
FANOUT_WINDOW_MAX_S = 0.25
"""With many clients the window grows (2.5 ms per client, at most 250 ms: 100 clients wake at most 400 times a
second in all, whatever the step rate); each wake-up costs the process some 20 us of the GIL."""
LISTEN_BACKLOG = 1024
"""Connections the kernel holds for the trainer to accept (a connect storm of 100 clients fits many times)."""
REPLAY_CHUNK_BYTES = 1 << 20
"""A replay goes out by sendfile in chunks of this size (each one waits for the client to take it)."""
_SEQ_AT_START = re.compile(rb'"seq":\s*(\d+)')


@dataclass(frozen=True)
class _ReplayFrom:
    """Writer instruction: send events from_seq..upto from events.jsonl (and `held`), then whatever is queued
    behind."""
    from_seq: int
    upto: int
    held: bytes = b""
    """The events a full disk held back at the join (not in the file then): sent from memory."""


_CLOSE = object()
"""Writer instruction: everything before this has been sent; close the connection."""


@dataclass(frozen=True)
class _Join:
    """Fan-out instruction: from here on `connection` streams; the events before it (seq <= upto) come from the
    file."""
    connection: Connection
    from_seq: int
    upto: int
    held: bytes = b""


@dataclass(frozen=True)
class _Reply:
    """Fan-out instruction: offer `reply` (an ack the training thread made) to `connection` right after the
    events emitted before it, so an ack never overtakes the `status` or `command` event of its own command;
    `then_close` when the client has shut its side and this was the last ack it waited for."""
    connection: Connection
    reply: dict[str, Any]
    then_close: bool


_STOP = object()
"""Fan-out instruction: the run is over; everything before this has been handed out."""


def start_server(trainer) -> LiveServer:
    """Serve `trainer` on its run's socket (path recorded in trainer.json) until `.close()`."""
    server = LiveServer(trainer, socket_path(trainer.run_dir))
    server.start()
    return server


class LiveServer:
    """Owns the listening socket and the set of connections (one per connected client)."""

    def __init__(self, trainer, path: Path):
        self.trainer = trainer
        self.path = path
        self.connections: set[Connection] = set()
        self.lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._ids = itertools.count(1)
        self._inode = 0
        self._fanout: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.chat_slots = threading.BoundedSemaphore(MAX_WAITING)
        """One per `generate` request waiting or being answered (from every client): a bounded queue."""
        self._fanout_thread = threading.Thread(target=self._fanout_loop, name="live-fanout", daemon=True)

    def start(self) -> None:
        ensure_socket_dir(self.path.parent)
        remove_stale_sockets(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # our own path: left by an earlier (killed) trainer of this same run
        self._sock = self._bind()
        update_trainer_json(self.trainer.run_dir, socket=str(self.path))
        self.trainer.events.subscribe(self._on_event)  # the training thread's only live-link work per event
        self._fanout_thread.start()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="live-accept", daemon=True)
        self._accept_thread.start()
        log.info("live socket %s", self.path)

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(LISTEN_BACKLOG)  # the kernel caps it at net.core.somaxconn
        sock.settimeout(REBIND_CHECK_S)
        self._inode = self.path.stat().st_ino
        return sock

    def _rebind_if_removed(self) -> None:
        """The socket file can vanish under a live trainer: logind empties $XDG_RUNTIME_DIR when the user's
        last session ends, tmp cleaners age out /tmp. Put it back, or the run could never be reached again."""
        try:
            if self.path.stat().st_ino == self._inode:
                return
            log.warning("live socket %s now belongs to another process; not taking it back", self.path)
            self._inode = self.path.stat().st_ino
            return
        except FileNotFoundError:
            pass
        if self._closing.is_set():
            return
        ensure_socket_dir(self.path.parent)
        old, self._sock = self._sock, self._bind()
        if old is not None:
            old.close()
        log.warning("live socket %s had been removed; listening on it again", self.path)

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            assert self._sock is not None
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                try:
                    self._rebind_if_removed()
                except OSError as exc:
                    log.warning("live socket %s cannot be re-created (%s); retrying", self.path, exc)
                continue
            except OSError:
                return  # the listening socket was closed
            try:
                pid, uid, _gid = peer_credentials(conn)
            except OSError:
                conn.close()  # gone before we looked
                continue
            if uid != os.getuid():
                log.warning("refused a live connection from uid %d (pid %d): not the trainer's user", uid, pid)
                conn.close()
                continue
            connection = Connection(self, conn, next(self._ids), pid)
            with self.lock:
                if self._closing.is_set():
                    conn.close()
                    return
                self.connections.add(connection)
            connection.start()

    def _on_event(self, event: dict[str, Any], line: bytes) -> None:
        """The event's events.jsonl line is what clients get: encoded once, by the log, the same bytes as a replay."""
        self._fanout.put(line)

    def join_stream(self, connection: Connection, from_seq: int) -> None:
        """Start streaming to `connection`: events up to now from the file, later ones live, none twice."""
        events = self.trainer.events
        # Under the event-log lock no event is emitted: the file holds exactly seq <= last_seq, less the lines a
        # full disk holds back (taken here, sent from memory), and the join lands in the fan-out queue right
        # behind event last_seq.
        with events.lock:
            self._fanout.put(_Join(connection, from_seq, events.last_seq, events.held()))

    def _fanout_loop(self) -> None:
        streaming: list[Connection] = []
        while True:
            window = min(FANOUT_WINDOW_MAX_S, max(FANOUT_WINDOW_S, FANOUT_WINDOW_PER_CLIENT_S * len(streaming)))
            batch, instruction = self._next_batch(window)
            if batch and streaming:
                blob = b"".join(batch)  # one message shared by every client
                for connection in streaming:
                    connection.offer(blob)
                if any(c.closed.is_set() for c in streaming):
                    streaming = [c for c in streaming if not c.closed.is_set()]
            if instruction is _STOP:
                return
            if isinstance(instruction, _Join):
                instruction.connection.offer(_ReplayFrom(instruction.from_seq, instruction.upto, instruction.held))
                streaming.append(instruction.connection)
            elif isinstance(instruction, _Reply):
                instruction.connection.offer(instruction.reply)
                if instruction.then_close:
                    instruction.connection.finish()

    def reply_after_events(self, connection: Connection, reply: dict[str, Any], then_close: bool) -> None:
        """Send `reply` to `connection` behind every event emitted so far, without waiting for the batch window."""
        self._fanout.put(_Reply(connection, reply, then_close))

    def _next_batch(self, window: float) -> tuple[list[bytes], Any]:
        """The events that arrive within `window` seconds of the first, up to a join, reply or stop instruction
        (returned apart, to be handled right after them): one wake-up per client per window, not per event."""
        batch: list[bytes] = []
        item = self._fanout.get()
        deadline = time.monotonic() + window
        while item is not _STOP and not isinstance(item, (_Join, _Reply)):
            batch.append(item)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch, None
            try:
                item = self._fanout.get(timeout=remaining)
            except queue.Empty:
                return batch, None
        return batch, item

    def forget(self, connection: Connection) -> None:
        with self.lock:
            self.connections.discard(connection)

    def hello(self) -> dict[str, Any]:
        """Works from the moment the Trainer object exists: the model may still be loading."""
        t = self.trainer
        info = read_json(Path(t.run_dir) / TRAINER_FILE) or {}
        name = info.get("name") or t.cfg.output.name or Path(t.run_dir).name
        return protocol.hello(
            run_id=Path(t.run_dir).name, name=name, status=t.status, step=t.step,
            total_steps=t.total_steps, config=t.cfg.to_dict(), last_seq=t.events.last_seq,
            pid=os.getpid(),
        )

    def close(self) -> None:
        """Send what is queued (the `end` event included), then close every connection and the socket."""
        self._closing.set()
        self.trainer.events.unsubscribe(self._on_event)
        self._fanout.put(_STOP)
        if self._fanout_thread.is_alive():
            self._fanout_thread.join(timeout=10.0)  # every event so far is in the clients' queues after this
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=REBIND_CHECK_S + 1.0)  # it must not put the socket back
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            connection.finish(run_ended=True)
        for connection in connections:
            connection.join(timeout=2.0)


class Connection:
    """One connection: a reader thread, a writer thread and the bounded queue between the trainer and the writer."""

    def __init__(self, server: LiveServer, conn: socket.socket, number: int, pid: int):
        self.server = server
        self.conn = conn
        self.name = f"client {number} (pid {pid})"
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_LIMIT)
        self.closed = threading.Event()
        self.streaming = False
        self.pending: dict[int, Any] = {}
        self._pending_lock = threading.Lock()
        self._reader_done = False
        self._tokens = itertools.count()
        self._reader = threading.Thread(target=self._read_loop, name=f"live-read-{number}", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"live-write-{number}", daemon=True)
        conn.settimeout(SEND_TIMEOUT_S)

    def start(self) -> None:
        self.offer(self.server.hello())
        self._writer.start()
        self._reader.start()

    # ----------------------------------------------------------------- called from any thread, never blocks
    def offer(self, item: Any) -> None:
        """Queue a message for this client; a full queue drops the client. Never raises, never blocks."""
        if self.closed.is_set():
            return
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self._drop_behind()

    def _drop_behind(self) -> None:
        """The queue is full: send nothing more but the reason, right behind what is on its way, then close."""
        if self.closed.is_set():
            return
        self.closed.set()
        log.warning("live %s dropped: %s messages behind", self.name, QUEUE_LIMIT)
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(protocol.error_reply(too_slow(QUEUE_LIMIT)))
            self.queue.put_nowait(_CLOSE)

    def drop(self, why: str, level: int = logging.WARNING) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        log.log(level, "live %s dropped: %s", self.name, why)
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)  # wakes the reader and a writer stuck in send

    def finish(self, run_ended: bool = False) -> None:
        """Flush what is queued, then close; at the end of the run, first refuse commands that still wait."""
        if self.closed.is_set():
            return
        if run_ended:
            with self._pending_lock:
                waiting, self.pending = list(self.pending.values()), {}
            for cmd_id in waiting:
                self.offer(protocol.ack(cmd_id, False, "the run ended before this command was applied",
                                        self.server.trainer.step))
        try:
            self.queue.put_nowait(_CLOSE)
        except queue.Full:
            self.drop("still behind when the connection closed")

    def join(self, timeout: float) -> None:
        self._writer.join(timeout)
        if self._writer.is_alive():
            self.drop("did not read the last events in time")
            self._writer.join(timeout)
        self._reader.join(timeout)

    # ----------------------------------------------------------------- reader thread
    def _read_loop(self) -> None:
        reader = protocol.LineReader()
        try:
            while not self.closed.is_set():
                try:
                    data = self.conn.recv(65536)
                except TimeoutError:
                    continue  # an idle client is fine; the timeout is for sends
                if not data:
                    break
                for line in reader.feed(data):
                    self._handle_line(line)
        except protocol.ProtocolError as exc:
            self._send_then_close(protocol.error_reply(f"{exc}; closing the connection"))
        except OSError:
            pass  # the peer went away or we shut the socket down: nothing to tell anyone
        finally:
            with self._pending_lock:
                self._reader_done = True
                waiting = bool(self.pending)
            if not waiting:  # else the last ack closes: `printf '<stop command>' | nc -U` still gets its answer
                self.finish()

    def _send_then_close(self, reply: dict[str, Any]) -> None:
        self.offer(reply)
        self.finish()

    def _handle_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            obj = protocol.decode(line)
        except protocol.ProtocolError as exc:
            self.offer(protocol.error_reply(str(exc)))
            return
        try:
            message = protocol.parse_client_message(obj, len(line))
        except protocol.ProtocolError as exc:
            if exc.cmd_id is not None:  # a command with a usable id: refused with an ack it can match
                self.offer(protocol.ack(exc.cmd_id, False, str(exc), self.server.trainer.step))
            else:
                self.offer(protocol.error_reply(str(exc)))
            return
        if isinstance(message, protocol.Replay):
            self._start_stream(message.from_seq)
        else:
            self._queue_command(message)

    def _start_stream(self, from_seq: int) -> None:
        if self.streaming:
            self.offer(protocol.error_reply("this connection already streams events; reconnect to replay again"))
            return
        self.streaming = True
        self.server.join_stream(self, from_seq)

    def _queue_command(self, req: protocol.CommandRequest) -> None:
        trainer = self.server.trainer
        if req.name == "ping":
            self.offer(protocol.ack(req.id, True, None, trainer.step))
            return
        error = validate_command(req.name, req.args, getattr(trainer, "params", None))
        if error is None and len(self.pending) >= PENDING_LIMIT:
            error = f"{PENDING_LIMIT} commands already wait for the next step boundary; wait for their acks"
        chat = req.name == "generate"
        if error is None and chat and not self.server.chat_slots.acquire(blocking=False):
            error = f"{MAX_WAITING} chat requests already wait to be answered; ask again when one is done"
        if error is not None:
            self.offer(protocol.ack(req.id, False, error, trainer.step))
            return
        token = next(self._tokens)
        with self._pending_lock:
            self.pending[token] = req.id

        def acked(reply: dict[str, Any]) -> None:  # on the training thread: must not raise or block
            if chat:
                self.server.chat_slots.release()
            with self._pending_lock:
                self.pending.pop(token, None)
                last = self._reader_done and not self.pending
            self.server.reply_after_events(self, reply, then_close=last)

        trainer.commands.put(Command(req.name, dict(req.args), req.id, ack=acked, source=self.name))

    # ----------------------------------------------------------------- writer thread
    def _write_loop(self) -> None:
        held = None  # an instruction taken off the queue while coalescing, handled next
        try:
            while True:
                item = held if held is not None else self.queue.get()
                held = None
                if item is _CLOSE:
                    break
                if isinstance(item, _ReplayFrom):
                    self._send_history(item)
                    continue
                chunks = [_as_bytes(item)]
                size = len(chunks[0])
                while size < BATCH_BYTES:  # coalesce a burst into one send
                    try:
                        nxt = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _CLOSE or isinstance(nxt, _ReplayFrom):
                        held = nxt
                        break
                    chunks.append(_as_bytes(nxt))
                    size += len(chunks[-1])
                send_tracked(self.conn, b"".join(chunks))
        except Stalled as stalled:  # told why before the close (the shutdown would stop the reason too)
            if not self.closed.is_set():
                self.closed.set()
                log.warning("live %s dropped: not reading (socket full for %g s)", self.name, SEND_TIMEOUT_S)
            goodbye(self.conn, stalled.rest, too_slow(self.queue.qsize(), SEND_TIMEOUT_S))
        except (BrokenPipeError, ConnectionResetError):
            # The client closed first (`nlirg runs` and `nlirg stop` leave without reading to the end): its normal
            # goodbye, not a line in trainer.log and the Log pane.
            self.drop("closed by the client", logging.DEBUG)
        except OSError as exc:
            self.drop(f"connection lost ({exc.strerror or exc})", logging.INFO)
        finally:
            self.closed.set()
            with contextlib.suppress(OSError):
                self.conn.shutdown(socket.SHUT_RDWR)
            self.conn.close()
            self.server.forget(self)

    def _send_history(self, replay: _ReplayFrom) -> None:
        """Send events.jsonl's lines with from_seq <= seq <= upto as written, in bounded chunks by sendfile: the
        kernel copies the bytes, so a replay costs this process two binary searches, however long the history,
        and never competes with the training thread for the GIL line by line."""
        if replay.upto < replay.from_seq:
            return
        held = replay.held.splitlines(keepends=True)
        first_held = _line_seq(held[0]) if held else None
        file_upto = replay.upto if first_held is None else first_held - 1  # a full disk: the rest is in `held`
        with open(self.server.trainer.events.path, "rb") as fh:
            offset = _offset_of(fh, replay.from_seq)
            end = _offset_of(fh, file_upto + 1)
            while offset < end:
                try:
                    offset += self.conn.sendfile(fh, offset, min(REPLAY_CHUNK_BYTES, end - offset))
                except TimeoutError:
                    raise stalled_in_file(fh, offset) from None
        wanted = [line for line in held if (_line_seq(line) or -1) >= replay.from_seq]
        if wanted:
            send_tracked(self.conn, b"".join(wanted))


def _as_bytes(item: bytes | dict[str, Any]) -> bytes:
    """Events arrive as their events.jsonl lines; replies (hello, ack, error) are encoded here."""
    return item if isinstance(item, bytes) else protocol.encode(item)


def _offset_of(fh: BinaryIO, seq: int) -> int:
    """Byte offset of the first events.jsonl line with a seq >= `seq` (the file's end when there is none): a
    binary search over the file (seqs only grow). A line without a seq is skipped; an unfinished last line
    (being written) counts as a later event."""
    lo, hi = 0, os.fstat(fh.fileno()).st_size
    while lo < hi:
        mid = (lo + hi) // 2
        fh.seek(mid - 1 if mid else 0)
        if mid:
            fh.readline()  # to the first line start >= mid
        pos = fh.tell()
        while pos < hi:
            line = fh.readline()
            found = _line_seq(line) if line.endswith(b"\n") else seq
            if found is not None:
                break
            pos = fh.tell()
        if pos >= hi:
            hi = mid
        elif found < seq:
            lo = fh.tell()
        else:
            hi = pos
    return lo


def _line_seq(line: bytes) -> int | None:
    """The seq of an events.jsonl line, read from its head (the log writes it first); None for a torn line."""
    if not line.rstrip().endswith(b"}"):
        return None
    match = _SEQ_AT_START.search(line, 0, 200)
    return int(match.group(1)) if match else None
