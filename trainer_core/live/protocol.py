"""The live-link protocol v1 (DESIGN §4, contract): the vocabulary the trainer and every client share.

Torch-free and textual-free: both `trainer_core.live.server` and `nlirg_tui` import it.

Framing: one JSON object per line, UTF-8, at most `MAX_LINE_BYTES` a line, every object has `v` (1) and
`type`. Two kinds of message go from the trainer to a client:

- events (`status`, `step`, `eval`, `flagged`, `checkpoint`, `log`, `error`, `command`, `end`) carry a
  monotonically increasing `seq` and are the lines of `events.jsonl`;
- replies (`hello`, `ack`, and an `error` answering this client's bad input) have no `seq`.

A client sends:

- `{"v":1,"type":"replay","from_seq":N}`: every event with seq >= N, then the live stream, without a gap or a
  duplicate. Events flow only after a replay; for the live stream alone use `from_seq = hello.last_seq + 1`.
  One replay per connection.
- `{"v":1,"type":"command","id":ID,"name":NAME,"args":{...}}` with NAME in `COMMAND_NAMES`; answered with
  `{"type":"ack","id":ID,"ok":bool,"error":str|null,"applied_at_step":N}` once the trainer applies it at a step
  boundary (`ping` is answered at once).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20
"""The longest line either side accepts, newline excluded; a longer one closes the connection."""

EVENT_TYPES = ("status", "step", "eval", "flagged", "checkpoint", "log", "error", "command", "end")
REPLY_TYPES = ("hello", "ack", "error")
CLIENT_TYPES = ("replay", "command")
COMMAND_NAMES = ("pause", "resume", "save", "stop", "set", "ping")
"""The same list as `trainer_core.live.control.COMMAND_NAMES` (kept here so clients need not import control)."""


class ProtocolError(ValueError):
    """A line that breaks the protocol; the message says what is wrong and how to fix it."""


# ---------------------------------------------------------------------------------------------- framing
def encode(message: dict[str, Any]) -> bytes:
    """One protocol line (with `v` filled in); NaN/inf are refused so the peer always gets valid JSON."""
    out = {"v": PROTOCOL_VERSION, **message}
    return (json.dumps(out, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse one line (without or with its newline) into an object with a known `v` and a string `type`."""
    if isinstance(line, bytes):
        if len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES:
            raise ProtocolError(f"line of {len(line)} bytes is over the {MAX_LINE_BYTES}-byte limit")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"line is not UTF-8 (byte {exc.start}); send one JSON object per line") from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON ({exc.msg} at column {exc.colno}); send one JSON object per line") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    if obj.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version v={obj.get('v')!r}; send v={PROTOCOL_VERSION}")
    if not isinstance(obj.get("type"), str):
        raise ProtocolError('missing "type" (a string)')
    return obj


class LineReader:
    """Splits a byte stream into lines, refusing any line over `MAX_LINE_BYTES` before buffering more."""

    def __init__(self, limit: int = MAX_LINE_BYTES):
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines in `data` (newline stripped); raises ProtocolError when a line grows past the limit."""
        self._buf += data
        lines = []
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end < 0:
                break
            if end - start > self.limit:
                raise ProtocolError(f"line over the {self.limit}-byte limit")
            lines.append(bytes(self._buf[start:end]))
            start = end + 1
        del self._buf[:start]
        if len(self._buf) > self.limit:
            raise ProtocolError(f"line over the {self.limit}-byte limit")
        return lines


# ---------------------------------------------------------------------------------------------- client messages
@dataclass(frozen=True)
class Replay:
    from_seq: int


@dataclass(frozen=True)
class CommandRequest:
    id: Any
    name: str
    args: dict[str, Any]


ClientMessage = Replay | CommandRequest


def parse_client_message(obj: dict[str, Any]) -> ClientMessage:
    """Check a decoded client object's shape (not the meaning of `set` args: the trainer checks those)."""
    kind = obj["type"]
    if kind == "replay":
        from_seq = obj.get("from_seq", 0)
        if isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 0:
            raise ProtocolError(f"replay.from_seq must be an integer >= 0, got {from_seq!r}")
        return Replay(from_seq)
    if kind == "command":
        cmd_id = obj.get("id")
        if cmd_id is not None and (isinstance(cmd_id, bool) or not isinstance(cmd_id, (str, int))):
            raise ProtocolError(f"command.id must be a string or an integer, got {cmd_id!r}")
        name = obj.get("name")
        if name not in COMMAND_NAMES:
            raise ProtocolError(f"unknown command {name!r}; known: {', '.join(COMMAND_NAMES)}")
        args = obj.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ProtocolError(f"command.args must be an object, got {type(args).__name__}")
        return CommandRequest(cmd_id, name, args)
    raise ProtocolError(f"unknown message type {kind!r}; a client sends one of: {', '.join(CLIENT_TYPES)}")


def replay(from_seq: int = 0) -> dict[str, Any]:
    return {"type": "replay", "from_seq": from_seq}


def command(cmd_id: str | int, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "command", "id": cmd_id, "name": name, "args": args or {}}


# ---------------------------------------------------------------------------------------------- replies
def hello(run_id: str, name: str, status: str, step: int, total_steps: int | None, config: dict[str, Any],
          last_seq: int, pid: int) -> dict[str, Any]:
    return {"type": "hello", "protocol": PROTOCOL_VERSION, "run_id": run_id, "name": name, "status": status,
            "step": step, "total_steps": total_steps, "config": config, "last_seq": last_seq, "pid": pid}


def ack(cmd_id: Any, ok: bool, error: str | None, applied_at_step: int) -> dict[str, Any]:
    return {"type": "ack", "id": cmd_id, "ok": ok, "error": error, "applied_at_step": applied_at_step}


def error_reply(message: str, cmd_id: Any = None) -> dict[str, Any]:
    """An `error` answering one client's bad input (no `seq`: it is not part of the run's history)."""
    out: dict[str, Any] = {"type": "error", "message": message}
    if cmd_id is not None:
        out["id"] = cmd_id
    return out


def is_event(message: dict[str, Any]) -> bool:
    return "seq" in message
