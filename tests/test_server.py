"""The live socket server: replay without gap or duplicate, bad input, other users, slow clients, churn.

Most tests talk to one real detached trainer on builtin:tiny whose run directory is nested deep, and its real
Unix socket. The gap/duplicate stress test drives the real server and EventLog in this process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading

import pytest

from tests.helpers import TINY, make_config, write_alpaca
from tests.live_helpers import (
    LONG,
    RawClient,
    live_env,
    long_detached_run,
    private_runtime_dir,
    server_owner,
    start_detached,
    terminate,
    trainer_json,
    wait_for,
    wait_for_exit,
    wait_for_socket,
    wait_for_step,
)
from trainer_core.live import protocol, sockets
from trainer_core.live.client import LiveClient
from trainer_core.live.events import EventLog, read_events
from trainer_core.live.server import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """One long-running trainer under a very deep root; stopped (and checked) when the module is done."""
    tmp = tmp_path_factory.mktemp("live")
    root = tmp.joinpath(*(["a_deeply_nested_folder_for_runs"] * 8))
    env = live_env(private_runtime_dir(), NLIRG_LIVE_SEND_TIMEOUT="1")
    with long_detached_run(tmp, env, root=root) as run:
        yield run


def step_of(msg) -> int:
    return msg["step"] if msg.get("type") == "step" else -1


def test_socket_is_private_and_short_however_deep_the_run(live_run):
    assert len(str(live_run.run_dir)) > 300
    assert len(str(live_run.socket).encode()) <= sockets.SOCKET_PATH_LIMIT
    assert stat.S_IMODE(live_run.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(live_run.socket.parent.stat().st_mode) == 0o700
    assert str(live_run.socket).startswith(live_run.env["XDG_RUNTIME_DIR"])


def test_hello_then_replay_then_live_without_gap(live_run):
    client = RawClient(live_run.socket)
    hello = client.read()
    assert hello["type"] == "hello" and hello["v"] == 1 and hello["protocol"] == 1
    assert hello["run_id"] == live_run.run_dir.name and hello["name"] == "train"
    assert hello["status"] in ("running", "paused") and hello["total_steps"] == LONG
    assert hello["config"]["model"]["path"] == "builtin:tiny" and hello["pid"] == trainer_json(live_run.run_dir)["pid"]
    client.send({"type": "replay", "from_seq": 0})
    target = hello["last_seq"] + 5
    last, before = client.read_until(lambda m: m.get("seq") == target)
    seqs = [m["seq"] for m in [*before, last]]
    assert seqs == list(range(0, target + 1))
    on_disk = {e["seq"]: e for e in read_events(live_run.run_dir / "events.jsonl")}
    assert all(on_disk[m["seq"]] == m for m in [*before, last])
    client.send({"type": "replay", "from_seq": 0})
    reply, _ = client.read_until(lambda m: "seq" not in m)
    assert reply["type"] == "error" and "already streams" in reply["message"]
    client.close()


def test_three_clients_at_once_see_the_same_stream(live_run):
    clients = [RawClient(live_run.socket) for _ in range(3)]
    hellos = [c.read() for c in clients]
    start = max(h["last_seq"] for h in hellos) + 1
    for c in clients:
        c.send({"type": "replay", "from_seq": start})
    streams = []
    for c in clients:
        last, before = c.read_until(lambda m: m.get("seq") == start + 10)
        streams.append([*before, last])
        c.close()
    assert streams[0] == streams[1] == streams[2]
    assert [m["seq"] for m in streams[0]] == list(range(start, start + 11))


@pytest.mark.parametrize("raw, reply_type, needle", [
    (b"\xff\xfe\x00garbage\n", "error", "UTF-8"),
    (b"this is not json\n", "error", "not JSON"),
    (b"[1, 2, 3]\n", "error", "JSON object"),
    (b'{"v": 9, "type": "replay"}\n', "error", "protocol version"),
    (b'{"v": 1, "type": "launch_missiles"}\n', "error", "unknown message type"),
    (b'{"v": 1, "type": "command", "id": "u1", "name": "explode"}\n', "ack", "unknown command"),
    (b'{"v": 1, "type": "command", "id": "u2", "name": "set", "args": {"lr_scale": "fast"}}\n', "ack", "lr_scale"),
    (b'{"v": 1, "type": "command", "id": "u3", "name": "set", "args": {"nlirg.k": [1]}}\n', "ack", "nlirg.k"),
    (b'{"v": 1, "type": "command", "id": "u4", "name": "set", "args": {"model.path": "x"}}\n', "ack", "cannot be set"),
    (b'{"v": 1, "type": "command", "id": "u5", "name": "pause", "args": {"now": true}}\n', "ack", "no arguments"),
    (b'{"v": 1, "type": "command", "id": "u6", "name": "set", "args": "lr_scale=2"}\n', "ack", "object"),
])
def test_bad_input_gets_an_answer_and_the_connection_stays_usable(live_run, raw, reply_type, needle):
    client = RawClient(live_run.socket)
    assert client.read()["type"] == "hello"
    client.send_raw(raw)
    reply = client.read()
    assert reply["type"] == reply_type and needle in (reply.get("message") or reply.get("error"))
    if reply_type == "ack":
        assert reply["ok"] is False and isinstance(reply["applied_at_step"], int)
    client.send({"type": "command", "id": "p", "name": "ping"})
    pong = client.read()
    assert (pong["type"], pong["id"], pong["ok"]) == ("ack", "p", True)
    client.close()


def test_an_oversize_line_closes_the_connection_and_training_goes_on(live_run):
    client = RawClient(live_run.socket)
    hello = client.read()
    try:
        client.send_raw(b'{"v": 1, "type": "replay", "pad": "' + b"x" * (protocol.MAX_LINE_BYTES + 10))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may hang up before we finish writing
    replies = []
    while (msg := client.read()) is not None:
        replies.append(msg)
    assert all("seq" not in m for m in replies), "no events were streamed to it"
    assert replies and replies[-1]["type"] == "error" and "limit" in replies[-1]["message"]
    client.close()
    wait_for_step(live_run.run_dir, _step_at(hello) + 3)


def _step_at(hello) -> int:
    return int(hello["step"])


def test_a_client_of_another_uid_is_dropped(live_run):
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another uid")
    probe = (
        "import ctypes, os, socket, sys\n"
        "if sys.argv[2] == 'other':\n"
        "    os.seteuid(65534)\n"
        "    ctypes.CDLL(None).setfsuid(0)  # keep the right to open the 0600 socket; SO_PEERCRED reports euid\n"
        "s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(sys.argv[1])\n"
        "data = b''\n"
        "while chunk := s.recv(65536):\n"
        "    data += chunk\n"
        "    if b'\\n' in data: break\n"
        "print('hello' if b'\"hello\"' in data else 'closed:' + repr(data))\n"
    )
    same = subprocess.run([sys.executable, "-c", probe, str(live_run.socket), "same"], capture_output=True,
                          text=True, timeout=60)
    other = subprocess.run([sys.executable, "-c", probe, str(live_run.socket), "other"], capture_output=True,
                           text=True, timeout=60)
    assert same.stdout.strip() == "hello", same.stderr
    assert other.stdout.strip() == "closed:b''", other.stderr
    assert "refused a live connection from uid 65534" in (live_run.run_dir / "trainer.log").read_text()


def test_a_client_that_stops_reading_is_dropped_told_why_and_training_goes_on(live_run):
    """The reason comes as an `error` reply after the line the stream stopped in, so a client can say it and
    reconnect from its last seq (issue 24); the trainer trains on."""
    log = live_run.run_dir / "trainer.log"
    drops = log.read_text().count("dropped: not reading")
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(str(live_run.socket))
    stalled.sendall(protocol.encode(protocol.replay(0)))
    wait_for(lambda: log.read_text().count("dropped: not reading") > drops, "the stalled client to be dropped")
    received = b""
    stalled.settimeout(60)
    while chunk := stalled.recv(1 << 20):  # it reads again at once: within the grace the reason waits for
        received += chunk
    stalled.close()
    lines = [json.loads(line) for line in received.splitlines() if line.strip()]  # no torn line
    seqs = [m["seq"] for m in lines if "seq" in m]
    assert seqs == list(range(len(seqs))), "what it did get has no gap"
    assert all(m["type"] != "end" for m in lines)
    assert lines[-1]["type"] == "error" and "id" not in lines[-1]
    assert lines[-1]["message"].startswith("too slow: ") and "reconnect and replay from your last seq" in \
        lines[-1]["message"]
    with LiveClient(live_run.socket) as watcher:
        first = watcher.hello["step"]
        for event in watcher.stream(watcher.hello["last_seq"] + 1):
            if step_of(event) >= first + 5:
                break


def test_commands_are_acked_with_their_step_and_logged(live_run):
    with LiveClient(live_run.socket) as client:
        client.send(protocol.replay(client.hello["last_seq"] + 1))
        paused = client.command("pause")
        assert paused["ok"] and paused["applied_at_step"] >= client.hello["step"]
        ping = client.command("ping")
        assert ping["ok"] and ping["applied_at_step"] == paused["applied_at_step"], "paused: the step stays put"
        changed = client.command("set", {"lr_scale": 0.25, "nlirg.x0": 1.5, "eval_every": 0, "save_every": 0})
        assert changed["ok"] and changed["applied_at_step"] == paused["applied_at_step"]
        resumed = client.command("resume")
        assert resumed["ok"]
        logged = []
        for event in client.messages():
            if event.get("type") == "command":
                logged.append(event)
            if len(logged) == 3:
                break
    assert [(e["name"], e["id"]) for e in logged] == [
        ("pause", paused["id"]), ("set", changed["id"]), ("resume", resumed["id"])]


def test_a_client_that_half_closes_after_a_command_still_gets_its_ack(live_run):
    """What `printf '{...}\\n' | nc -U SOCKET` does: send, shut the write side, read the answer."""
    client = RawClient(live_run.socket)
    client.send({"type": "command", "id": "hc", "name": "save"})
    client.sock.shutdown(socket.SHUT_WR)
    ack, before = client.read_until(lambda m: m.get("type") == "ack")
    assert [m["type"] for m in before] == ["hello"]
    assert ack["id"] == "hc" and ack["ok"] is True
    assert client.read() is None, "then the server closes"
    client.close()


def test_a_removed_socket_is_put_back(live_run):
    """logind empties $XDG_RUNTIME_DIR when the user's last SSH session ends; the run must stay reachable."""
    shutil.rmtree(live_run.socket.parent)
    wait_for(live_run.socket.exists, "the trainer to re-create its socket")
    assert stat.S_IMODE(live_run.socket.parent.stat().st_mode) == 0o700
    with LiveClient(live_run.socket) as client:
        assert client.hello["run_id"] == live_run.run_dir.name
        assert client.command("ping")["ok"]


# ---------------------------------------------------------------------------------------------- churn vs reference
def test_fifty_connect_replay_disconnect_cycles_lose_no_event_and_change_no_loss(tmp_path):
    env = live_env(private_runtime_dir())
    churned = start_detached(tmp_path, env, extra=["training.seed=7"])
    rng = random.Random(0)
    try:
        sock = wait_for_socket(churned)
        wait_for_step(churned, 2)
        for cycle in range(50):
            client = RawClient(sock)
            hello = client.read()
            live = cycle % 5 == 0  # every fifth cycle also waits for a live event; the rest replay and leave
            starts = [0, max(0, hello["last_seq"] - rng.randint(0, 30))] + ([hello["last_seq"] + 1] if live else [])
            from_seq = rng.choice(starts)
            client.send({"type": "replay", "from_seq": from_seq})
            want = hello["last_seq"] + (1 if live else 0)
            last, before = client.read_until(lambda m, want=want: m.get("seq") == want)
            got = [m["seq"] for m in [*before, last] if "seq" in m]
            assert got == list(range(from_seq, want + 1)), f"cycle {cycle}: gap or duplicate"
            if cycle % 10 == 0:
                client.send_raw(b"garbage\n")  # abuse mixed in with the churn
            client.close()
        with LiveClient(sock) as client:
            assert client.command("stop")["ok"]
        wait_for_exit(trainer_json(churned)["pid"])
    finally:
        terminate(churned)
    churn_steps = [e for e in read_events(churned / "events.jsonl") if e["type"] == "step"]
    last_step = churn_steps[-1]["step"]

    quiet = start_detached(tmp_path, live_env(private_runtime_dir()), extra=["training.seed=7"])
    try:
        wait_for_step(quiet, last_step)
        os.kill(trainer_json(quiet)["pid"], signal.SIGTERM)
        wait_for_exit(trainer_json(quiet)["pid"])
    finally:
        terminate(quiet)
    quiet_steps = {e["step"]: e["loss"] for e in read_events(quiet / "events.jsonl") if e["type"] == "step"}
    assert [e["step"] for e in churn_steps] == list(range(1, last_step + 1))
    assert {e["step"]: e["loss"] for e in churn_steps} == {s: quiet_steps[s] for s in range(1, last_step + 1)}


# ---------------------------------------------------------------------------------------------- in process
def test_replay_races_a_fast_emitter_without_gap_or_duplicate(tmp_path, monkeypatch):
    """The real server and EventLog, 20 clients joining at random points of a 3000-event burst."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", private_runtime_dir())
    data = write_alpaca(tmp_path / "d.jsonl", n=4)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    owner = server_owner(run_dir, events, 3000, cfg=make_config([*TINY, f"data.train={data}"]))
    server = LiveServer(owner, sockets.socket_path(run_dir))
    server.start()
    total = 3000
    results: dict[int, list[int]] = {}

    def client(n: int, start_at: int) -> None:
        wait_for(lambda: events.last_seq >= start_at, "the burst to reach the join point", every=0.001)
        with LiveClient(server.path) as c:
            from_seq = random.Random(n).randint(0, max(0, c.hello["last_seq"]))
            results[n] = [e["seq"] for e in c.stream(from_seq)]
            results[n].insert(0, from_seq)

    threads = [threading.Thread(target=client, args=(n, n * 120)) for n in range(20)]
    for t in threads:
        t.start()
    for i in range(total - 1):
        events.emit("log", level="info", message=f"event {i}")
    events.emit("end", status="completed", reason="completed")
    for t in threads:
        t.join(timeout=120)
    server.close()
    events.close()
    assert len(results) == 20
    for n, (from_seq, *seqs) in results.items():
        assert seqs == list(range(from_seq, total)), f"client {n}"
    assert not server.path.exists()


def test_a_live_client_gets_each_event_as_its_events_jsonl_line(tmp_path, monkeypatch):
    """The log encodes an event once; the fan-out sends those bytes (no second encode on the server, and what a
    client gets live is what a replay of the file gives it)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", private_runtime_dir())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    events.emit("log", level="info", message="before the client")
    owner = server_owner(run_dir, events, 3)
    server = LiveServer(owner, sockets.socket_path(run_dir))
    server.start()
    try:
        client = RawClient(server.path)
        client.send({"type": "replay", "from_seq": client.read()["last_seq"] + 1})
        client.send({"type": "command", "id": "joined", "name": "ping"})  # read after the replay: its join is queued
        assert client.read()["id"] == "joined"
        events.emit("log", level="warning", message="中文 and a float: 0.1")
        events.emit("error", message="boom", step=2, fatal=False)
        received = b""
        while received.count(b"\n") < 2:
            received += client.sock.recv(1 << 16)
        client.close()
    finally:
        server.close()
        events.close()
    assert received == b"".join((run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)[1:])


def test_a_failing_listener_never_reaches_the_emitter(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    seen = []

    def broken(event, line):
        raise RuntimeError("client bug")

    log.subscribe(broken)
    log.subscribe(lambda event, line: seen.append(event))
    log.emit("log", level="info", message="one")
    log.emit("log", level="info", message="two")
    log.close()
    assert [e["message"] for e in seen] == ["one", "two"]
    assert len(read_events(tmp_path / "events.jsonl")) == 2


def test_a_client_that_leaves_without_reading_its_answer_is_no_log_line(tmp_path, monkeypatch, caplog):
    """`nlirg runs` and `nlirg stop` close as soon as they have what they came for; the server's next write then
    meets a closed peer. That goodbye is not `dropped: connection lost` in trainer.log and the Log pane."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", private_runtime_dir())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    owner = server_owner(run_dir, events, 3)
    server = LiveServer(owner, sockets.socket_path(run_dir))
    server.start()
    caplog.set_level("INFO", logger="trainer_core")
    try:
        for n in range(30):
            client = RawClient(server.path)
            if n % 2:  # read the hello, ask, leave before the answer; or leave before the hello
                client.read()
                client.send({"type": "command", "id": f"c{n}", "name": "ping"})
            client.close()
        wait_for(lambda: not server.connections, "the server to forget every client")
    finally:
        server.close()
        events.close()
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()] == []
