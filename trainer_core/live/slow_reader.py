"""A client too slow for the live stream is told why before it is dropped (docs/live.md "Limits").

The writer sends with `send_tracked`, so when a client stops taking bytes it knows where in a line the stream
stopped; `goodbye` then finishes that line (so the client's reader never sees a torn one) and sends an `error`
reply saying why, with a short grace, before the connection closes. A client whose queue overflows gets the same
reply after what is on its way. The client reconnects and replays from its last seq: nothing is lost."""

from __future__ import annotations

import contextlib
import socket
from typing import BinaryIO

from trainer_core.live import protocol

GOODBYE_GRACE_S = 2.0
"""How long the last line and the reason may wait for a client that stopped reading."""


class Stalled(Exception):
    """The client took no bytes for the socket's timeout; `rest` finishes the line it was in the middle of."""

    def __init__(self, rest: bytes):
        super().__init__("stalled")
        self.rest = rest


def too_slow(queued: int, stalled_s: float | None = None) -> str:
    stalled = f", its socket full for {stalled_s:g} s" if stalled_s is not None else ""
    return (f"too slow: {queued} messages queued for this client{stalled}; closing the connection (reconnect and "
            "replay from your last seq: nothing is lost)")


def send_tracked(conn: socket.socket, data: bytes) -> None:
    """`sendall`, except that a stall (no byte taken for the socket's timeout) raises Stalled with the rest of
    the line that was being sent."""
    view, sent = memoryview(data), 0
    while sent < len(data):
        try:
            sent += conn.send(view[sent:])
        except TimeoutError:
            raise Stalled(_rest_of_line(data, sent)) from None


def stalled_in_file(fh: BinaryIO, start: int) -> Stalled:
    """The Stalled of a sendfile that stopped part way: `fh` stands where the bytes stopped (socket.sendfile
    leaves it there), `start` is where this chunk began."""
    stop = fh.tell()
    if stop <= start:
        return Stalled(b"")
    fh.seek(stop - 1)
    if fh.read(1) == b"\n":
        return Stalled(b"")
    return Stalled(fh.readline())


def goodbye(conn: socket.socket, rest: bytes, why: str) -> None:
    """Finish the torn line and send the `error` reply, waiting at most GOODBYE_GRACE_S; never raises."""
    with contextlib.suppress(OSError):
        conn.settimeout(GOODBYE_GRACE_S)
        conn.sendall(rest + protocol.encode(protocol.error_reply(why)))


def _rest_of_line(data: bytes, sent: int) -> bytes:
    if sent == 0 or data[sent - 1:sent] == b"\n":
        return b""
    end = data.find(b"\n", sent)
    return data[sent:] if end < 0 else data[sent:end + 1]
