"""The append-only event log of a run (`events.jsonl`) and the fan-out to live listeners.

Every event gets `v`, `type`, a monotonically increasing `seq` and a timestamp. Writing the line and
handing the event to listeners happen under one lock, so a listener that subscribes while replaying
the file sees every event exactly once (docs/design.md §4). Listeners get the written line with the event: the live
link sends those very bytes, so an event is encoded once and reads the same live and replayed.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer_core.atomic import AppendFile, cut_torn_tail
from trainer_core.live.line_limit import cut_to_fit, dumps
from trainer_core.live.log_events import NOT_AN_EVENT
from trainer_core.live.protocol import MAX_LINE_BYTES, PROTOCOL_VERSION, check_event_fields

Listener = Callable[[dict[str, Any], bytes], None]
"""Called with each event and its events.jsonl line (newline included), on the emitting thread: must not block."""


def read_events(path: str | Path, from_seq: int = 0) -> list[dict[str, Any]]:
    """Events with seq >= from_seq from an events.jsonl (a torn last line is ignored)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    with p.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
                continue  # a torn line that happens to parse (`12`), or no event at all
            if event["seq"] >= from_seq:
                out.append(event)
    return out


class EventLog:
    """Append-only JSONL event log with seq numbers, continuing an existing file on resume."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.RLock()
        torn = cut_torn_tail(self.path)  # a kill mid-write: the resumed run's first event starts a line of its own
        if torn:
            logging.getLogger("trainer_core").warning("%s: cut a torn last line (%d bytes) left by a killed trainer",
                                                      self.path.name, torn, extra=NOT_AN_EVENT)
        existing = read_events(self.path)
        self.next_seq = (existing[-1]["seq"] + 1) if existing else 0
        self._fh = AppendFile(self.path)  # one write call per event, whole or not at all, nothing buffered
        self._pending = bytearray()
        """Bytes not yet on disk (a full disk): kept, and written first once space returns."""
        self._disk_error: str | None = None
        self._listeners: list[Listener] = []

    def emit(self, type_: str, **payload: Any) -> dict[str, Any]:
        """Append one event (fields as `trainer_core.live.protocol.EVENTS[type_]` defines them) and fan it out."""
        check_event_fields(type_, payload)
        with self.lock:
            event = {"v": PROTOCOL_VERSION, "type": type_, "seq": self.next_seq, "ts": round(time.time(), 3)}
            event.update(clean(payload))
            self.next_seq += 1
            line, cuts = cut_to_fit(event, dumps(event))  # the event is cut in place: listeners see what is written
            self._write(line)
            for listener in list(self._listeners):
                try:
                    listener(event, line)
                except Exception:  # noqa: BLE001 - a live client's bug must not kill training; it is logged and cut off
                    logging.getLogger("trainer_core").exception("event listener %r failed; unsubscribed", listener,
                                                                extra=NOT_AN_EVENT)
                    self._listeners.remove(listener)
        if cuts:
            self._note_cut(event, cuts)
        return event

    def _note_cut(self, event: dict[str, Any], cuts: list[str]) -> None:
        """Say, in trainer.log and as a `log` event right after it, that an event was cut to fit the line limit."""
        note = (f"event seq {event['seq']} ({event['type']}) was over the live protocol's {MAX_LINE_BYTES}-byte "
                f"line limit and was cut: {'; '.join(cuts)}")
        logging.getLogger("trainer_core").warning("%s", note, extra=NOT_AN_EVENT)
        self.emit("log", level="warning", message=note[:4096])

    def _write(self, data: bytes) -> None:
        """Append to events.jsonl; on a full disk keep the bytes and go on, so training never dies of it."""
        self._pending += data
        try:
            self._fh.append(bytes(self._pending))
            self._pending.clear()
        except OSError as exc:
            if self._disk_error is None:
                self._disk_error = exc.strerror or str(exc)
                logging.getLogger("trainer_core").error(
                    "cannot write %s (%s): events are kept in memory until there is space; free disk space",
                    self.path, self._disk_error, extra=NOT_AN_EVENT)
            return
        if self._disk_error is not None:
            logging.getLogger("trainer_core").warning("%s is writable again; held events written", self.path,
                                                      extra=NOT_AN_EVENT)
            self._disk_error = None

    def held(self) -> bytes:
        """The whole lines a full disk holds back (the events right after the file's last one); b"" normally.
        Take it under `lock`, with `last_seq`, for a consistent view of what the file lacks."""
        return bytes(self._pending)

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    def subscribe(self, listener: Listener) -> None:
        with self.lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def close(self) -> None:
        """Close the file after one last try at events a full disk held back (said in one line if they are lost)."""
        with self.lock:
            if self._pending:
                self._write(b"")
            if self._pending:
                logging.getLogger("trainer_core").error(
                    "%s: %d bytes of events never written (the disk stayed full)", self.path, len(self._pending),
                    extra=NOT_AN_EVENT)
            self._fh.close()


def clean(obj: Any) -> Any:
    """Replace NaN/inf by None (JSON has no such numbers) all the way down."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return obj
