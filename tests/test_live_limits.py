"""Nothing a client sends may kill or poison a run (issue 15, items 1-4): non-finite `set` values, argument
schemas and size limits, deep JSON, a strict version, event lines within the line limit, no checkpoint of NaN
weights, and a connect storm.

The socket tests share one real detached trainer on builtin:tiny (`nlirg train --detach`) and its real Unix
socket; the module's teardown stops it and checks that nothing here killed it.
"""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest
import torch

from tests.helpers import TINY, train_in_process, write_alpaca
from tests.live_helpers import (
    RawClient,
    live_env,
    long_detached_run,
    nlirg,
    private_runtime_dir,
    server_owner,
)
from trainer_core.config import RunConfig
from trainer_core.live import protocol
from trainer_core.live.client import LiveClient
from trainer_core.live.control import Command, validate_command
from trainer_core.live.events import EventLog, read_events
from trainer_core.live.server import LiveServer

pytestmark = pytest.mark.slow

FLOAT_KEYS = [key for key, hint in protocol.SETTABLE.items() if hint is float]
NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e309"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    with long_detached_run(tmp, live_env(private_runtime_dir())) as live:
        yield live


def _connected(path) -> RawClient:
    client = RawClient(path)
    assert client.read()["type"] == "hello"
    return client


def _ping_ok(client: RawClient) -> None:
    client.send({"type": "command", "id": "alive", "name": "ping"})
    assert client.read_until(lambda m: m.get("id") == "alive")[0]["ok"] is True


def _raw_command(cmd_id: str, name: str, args: bytes) -> bytes:
    return b'{"v": 1, "type": "command", "id": "%s", "name": "%s", "args": %s}\n' % (cmd_id.encode(), name.encode(),
                                                                                    args)


# ---------------------------------------------------------------------------------------------- item 1
def test_set_refuses_nan_and_infinity_for_every_number_it_takes(run):
    client = _connected(run.socket)
    for key in FLOAT_KEYS:
        for i, raw in enumerate(NON_FINITE):
            client.send_raw(_raw_command(f"{key}-{i}", "set", b'{"%s": %s}' % (key.encode(), raw)))
            ack = client.read_until(lambda m, k=key, n=i: m.get("id") == f"{k}-{n}")[0]
            assert ack["type"] == "ack" and ack["ok"] is False, (key, raw)
            assert key.removeprefix("nlirg.") in ack["error"] and "not a finite number" in ack["error"], ack
    _ping_ok(client)
    client.close()
    sent = {f"{key}-{i}" for key in FLOAT_KEYS for i in range(len(NON_FINITE))}
    applied = [e for e in read_events(run.run_dir / "events.jsonl") if e["type"] == "command" and e["id"] in sent]
    assert applied == [], "no refused value reached the trainer's history"


def test_set_keeps_the_config_validators_ranges(run):
    client = _connected(run.socket)
    for cmd_id, key, value in (("neg", "lr_scale", b"-0.5"), ("huge", "lr_scale", b"1e300"),
                               ("maxlr", "nlirg.max_lr", b"0"), ("flag", "flag_threshold", b"-1"),
                               ("deadline", "nlirg.loss_deadline", b"1.0")):
        client.send_raw(_raw_command(cmd_id, "set", b'{"%s": %s}' % (key.encode(), value)))
        ack = client.read_until(lambda m, c=cmd_id: m.get("id") == c)[0]
        assert ack["ok"] is False and key.removeprefix("nlirg.") in ack["error"], (cmd_id, ack)
    client.close()


def test_set_checks_related_values_against_the_runs_own_parameters(run):
    """easy_max 7 is valid once hard_min is 8: the reader thread checks against the run's values, not defaults."""
    with LiveClient(run.socket) as client:
        assert client.command("set", {"nlirg.hard_min": 8.0})["ok"]
        ack = client.command("set", {"nlirg.easy_max": 7.0})
        assert ack["ok"], ack
        assert client.command("set", {"nlirg.easy_max": 1.45, "nlirg.hard_min": 6.6})["ok"]


def test_a_set_that_no_longer_fits_is_refused_at_the_step_boundary(tmp_path):
    """The reader checks a `set` against the parameters when it arrives; two that each fit alone (hard_min 2, then
    easy_max 3) do not fit together, so the step boundary checks again and refuses the second, with why."""
    acks: list[dict] = []

    def both(trainer) -> None:
        for cmd_id, args in (("hard", {"nlirg.hard_min": 2.0}), ("easy", {"nlirg.easy_max": 3.0})):
            assert validate_command("set", args, trainer.params) is None, "each passes the reader's check"
            trainer.commands.put(Command("set", args, id=cmd_id, ack=acks.append))

    overrides = [*TINY, f"data.train={write_alpaca(tmp_path / 'd.jsonl')}", "training.save_every=0",
                 "training.eval_every=0", "data.eval_fraction=0", "training.max_steps=1"]
    trainer, _status = train_in_process(tmp_path / "run", overrides, before_fit=both)
    assert [(a["id"], a["ok"]) for a in acks] == [("hard", True), ("easy", False)]
    assert acks[1]["error"].startswith("nlirg: zone bounds must satisfy 0 < easy_max (3.0) < hard_min (2.0)"), acks
    assert (trainer.params.hard_min, trainer.params.easy_max) == (2.0, 1.45)
    applied = [e["id"] for e in read_events(tmp_path / "run" / "events.jsonl") if e["type"] == "command"]
    assert applied == ["hard"]


@pytest.mark.parametrize("pair", ["nlirg.k=.nan", "lr_scale=1e309", "nlirg.max_lr=-.inf", "flag_threshold=nan"])
def test_cli_set_with_a_non_finite_value_is_one_line_and_exit_2(run, pair):
    out = nlirg("set", str(run.run_dir), pair, cwd=run.tmp, env=run.env)
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "not a finite number" in out.stderr


def test_a_checkpoint_is_never_written_from_non_finite_weights(tmp_path):
    acks: list[dict] = []

    def poison(trainer) -> None:
        with torch.no_grad():
            next(p for p in trainer.model.parameters() if p.requires_grad).view(-1)[0] = float("nan")
        trainer.commands.put(Command("save", id="s", ack=acks.append))

    overrides = [*TINY, f"data.train={write_alpaca(tmp_path / 'd.jsonl')}", "training.save_every=1",
                 "training.eval_every=0", "data.eval_fraction=0", "training.max_steps=2"]
    trainer, _status = train_in_process(tmp_path / "run", overrides, before_fit=poison)
    assert acks and acks[0]["ok"] is False and "NaN or inf" in acks[0]["error"], acks
    assert not list((tmp_path / "run").glob("checkpoints/step-*")), "no checkpoint of NaN weights"
    assert not (tmp_path / "run" / "final").exists()
    errors = [e["message"] for e in read_events(tmp_path / "run" / "events.jsonl") if e["type"] == "error"]
    assert any("not written" in m and "NaN or inf" in m for m in errors), errors
    assert all("no checkpoint was written before it" in m for m in errors if "NaN or inf" in m)  # none to resume
    end = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["type"] == "end"][-1]
    assert end["status"] == "failed" and end["reason"] == "nan"  # not "disk": the weights, not the disk, failed


# ---------------------------------------------------------------------------------------------- item 2
def test_save_refuses_arguments_deep_or_huge_before_the_trainer_sees_them(run):
    client = _connected(run.socket)
    deep = b'{"x": ' + b"[" * 900 + b"]" * 900 + b"}"
    huge = b'{"path": "' + b"x" * ((1 << 20) - 100) + b'"}'
    for cmd_id, args in (("deep", deep), ("huge", huge), ("unknown", b'{"tag": "a"}')):
        client.send_raw(_raw_command(cmd_id, "save", args))
        ack = client.read_until(lambda m, c=cmd_id: m.get("id") == c)[0]
        assert ack["type"] == "ack" and ack["ok"] is False, (cmd_id, ack)
        assert len(ack["error"]) < 1000, "a refusal never echoes what the client sent"
    _ping_ok(client)
    client.close()
    lines = (run.run_dir / "events.jsonl").read_bytes().splitlines()
    assert max(len(line) for line in lines) <= protocol.MAX_LINE_BYTES
    commands = [e for e in read_events(run.run_dir / "events.jsonl") if e["type"] == "command"]
    assert not [e for e in commands if e["id"] in ("deep", "huge", "unknown")]


def test_an_event_over_the_line_limit_is_cut_and_replays(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    events.emit("log", level="info", message="x" * (2 << 20))
    sample = {"sample_id": 1, "step": 1, "source": None, "line": None, "id": None, "mean_loss": 9.0, "max_loss": 16.0,
              "zeroed_tokens": 1, "target_tokens": 80_000, "tokens": ["tok"] * 80_000,
              "losses": [1.5] * 80_000, "weights": [0.5] * 80_000, "zones": [1] * 80_000}
    events.emit("flagged", step=1, samples=[sample, dict(sample)])
    for line in (run_dir / "events.jsonl").read_bytes().splitlines():
        assert len(line) <= protocol.MAX_LINE_BYTES
        assert protocol.event_problems(json.loads(line)) == []
    owner = server_owner(run_dir, events, 1, cfg=RunConfig(), status="completed")
    server = LiveServer(owner, tmp_path / "s.sock")  # a short path: pytest's tmp_path may be long
    server.start()
    try:
        with LiveClient(server.path) as client:
            client.send(protocol.replay(0))
            got = [client.read() for _ in range(4)]
    finally:
        server.close()
        events.close()
    kinds = [(m["type"], m.get("seq")) for m in got]
    assert kinds == [("log", 0), ("log", 1), ("flagged", 2), ("log", 3)]
    assert "was cut" in got[1]["message"] and "was cut" in got[3]["message"]
    flagged = got[2]["samples"][0]
    assert len(flagged["tokens"]) == len(flagged["losses"]) == len(flagged["weights"]) == len(flagged["zones"])


# ---------------------------------------------------------------------------------------------- item 3
def test_deep_json_gets_an_error_and_the_connection_stays_usable(run):
    client = _connected(run.socket)
    client.send_raw(b"[" * 100_000 + b"\n")
    reply = client.read()
    assert reply["type"] == "error" and "nested" in reply["message"]
    _ping_ok(client)
    client.close()


@pytest.mark.parametrize("version", [b"true", b"1.0"])
def test_the_version_must_be_the_integer_1(run, version):
    client = _connected(run.socket)
    client.send_raw(b'{"v": %s, "type": "command", "id": "p", "name": "ping"}\n' % version)
    reply = client.read()
    assert reply["type"] == "error" and "version" in reply["message"]
    client.close()


# ---------------------------------------------------------------------------------------------- item 4
def test_a_connect_storm_of_100_clients_all_get_hello_and_save_still_works(run):
    start = threading.Barrier(100)
    hellos: list[str] = []
    failures: list[str] = []

    def connect() -> None:
        start.wait()
        try:
            with LiveClient(run.socket, timeout=60) as client:
                hellos.append(client.hello["type"])
                start_save.wait()
        except OSError as exc:
            failures.append(repr(exc))

    start_save = threading.Event()
    threads = [threading.Thread(target=connect) for _ in range(100)]
    for t in threads:
        t.start()
    out = nlirg("save", str(run.run_dir), cwd=run.tmp, env=run.env)
    start_save.set()
    for t in threads:
        t.join()
    assert failures == [] and len(hellos) == 100
    assert out.returncode == 0 and "save applied at step" in out.stdout, out.stderr


def test_save_against_a_full_listen_queue_retries_then_says_one_line(tmp_path):
    """A trainer whose listen queue stays full (it accepts nothing): `nlirg save` gives up with one line."""
    runtime = private_runtime_dir()
    path = f"{runtime}/busy.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    queued = []
    while True:  # fill the queue: the next connect gets EAGAIN
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            probe.connect(path)
        except BlockingIOError:
            probe.close()
            break
        queued.append(probe)
    run_dir = tmp_path / "busy-run"
    run_dir.mkdir()
    (run_dir / "trainer.json").write_text(json.dumps({"status": "running", "pid": os.getpid(), "socket": path}))
    try:
        out = nlirg("save", str(run_dir), cwd=tmp_path, env=live_env(runtime, NLIRG_LIVE_BUSY_WAIT="1"))
    finally:
        for probe in queued:
            probe.close()
        listener.close()
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "busy" in out.stderr
