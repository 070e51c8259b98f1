"""The TUI's live link (issue 24): a full listen queue is waited out, not taken for a connection, and a link the
trainer drops is explained (the `error` it sent before the close) and picked up again from the last seq.

The other end is a real Unix socket served by this test the way the trainer serves it (hello, a replay, events
as events.jsonl holds them, the `error` of a too-slow client, the close), so each step is under its control."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from textual.app import App

from nlirg_tui.client import RunLink
from nlirg_tui.messages import LinkChanged
from tests.tui.conftest import until
from trainer_core.live import protocol
from trainer_core.live.events import EventLog
from trainer_core.live.slow_reader import too_slow
from trainer_core.live.sockets import ensure_socket_dir, socket_path

pytestmark = pytest.mark.anyio


class LinkApp(App):
    def __init__(self, run_dir):
        super().__init__()
        self.run_dir = run_dir

    def compose(self):
        yield RunLink(self.run_dir)


def _read_request(conn: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        data += conn.recv(4096)
    return json.loads(data)


async def test_a_busy_socket_is_waited_out_and_a_dropped_link_says_why_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    for i in range(3):
        events.emit("log", level="info", message=f"line {i}")
    events.close()
    lines = (run_dir / "events.jsonl").read_bytes()
    path = socket_path(run_dir)
    ensure_socket_dir(path.parent)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    filler.connect(str(path))  # the listen queue (of 1) is now full: a connect storm
    hello = protocol.encode({"type": "hello", "run_dir": str(run_dir), "status": "running", "step": 0,
                             "last_seq": 2, "pid": 1, "config": {}})
    requests: list[dict] = []
    go = threading.Event()

    def serve() -> None:
        go.wait(60)
        server.accept()[0].close()  # the storm's connection: taken and gone, the queue has room again
        first = server.accept()[0]
        requests.append(_read_request(first))
        first.sendall(hello + lines + protocol.encode(protocol.error_reply(too_slow(4096))))
        first.close()
        second = server.accept()[0]
        requests.append(_read_request(second))
        second.sendall(hello)
        go.wait(60)
        second.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    seen: list = []
    app = LinkApp(run_dir)
    try:
        async with app.run_test(message_hook=seen.append) as pilot:
            changes = lambda: [m.detail for m in seen if isinstance(m, LinkChanged)]  # noqa: E731
            await until(pilot, lambda: any("busy" in d for d in changes()), "the busy socket said")
            go.set()
            await until(pilot, lambda: len(requests) == 2, "the reconnect")
            assert requests == [protocol.replay(0) | {"v": 1}, protocol.replay(3) | {"v": 1}]  # from the last seq
            dropped = [d for d in changes() if "too slow" in d]
            assert dropped and dropped[0].startswith("link lost (the trainer closed the connection: too slow: 4096")
            assert app.query_one(RunLink).last_seq == 2
    finally:
        go.set()
        filler.close()
        server.close()
        thread.join(10)
