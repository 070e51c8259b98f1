"""Every message a real trainer sends fits its definition in trainer_core.live.protocol (docs/design.md §4).

One real detached trainer on builtin:tiny, steered over its real socket so that it writes every kind of event
(status running/paused, step, eval, flagged, checkpoint, command, chat, log, end); then every line of its
events.jsonl and every reply it sent (hello, ack, error) is checked against the protocol's definitions. A
trainer that fails on its config writes the fatal `error` and the summary-less `end`, checked the same way.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live_helpers import (
    live_env,
    private_runtime_dir,
    start_detached,
    terminate,
    trainer_json,
    wait_for_exit,
    wait_for_socket,
)
from trainer_core.live import protocol
from trainer_core.live.client import LiveClient
from trainer_core.live.events import read_events

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def steered_run(tmp_path_factory):
    """A 6-step run paused before its first step, steered, then left to complete; returns (run_dir, replies)."""
    tmp = tmp_path_factory.mktemp("contract")
    env = live_env(private_runtime_dir())
    extra = ["data.eval_fraction=0.2", "training.eval_every=3", "training.save_every=2", "telemetry.flag_threshold=0.5"]
    run_dir = start_detached(tmp, env, max_steps=6, extra=extra)
    replies = []
    try:
        with LiveClient(wait_for_socket(run_dir), timeout=120) as client:
            replies.append(client.hello)
            for name, args in (("pause", None), ("ping", None), ("generate", {"prompt": "Hi", "max_new_tokens": 3}),
                               ("set", {"lr_scale": 0.5, "nlirg.k": 2.0}),
                               ("set", {"lr_scale": -1}), ("save", None), ("resume", None)):
                replies.append(client.command(name, args))
            client.send({"type": "subscribe"})  # bad input: an error reply
            replies.append(next(m for m in client.messages() if m["type"] == "error"))
        wait_for_exit(trainer_json(run_dir)["pid"])
        yield run_dir, replies
    finally:
        terminate(run_dir)


def test_every_event_of_a_real_run_fits_its_definition(steered_run):
    run_dir, _ = steered_run
    events = read_events(run_dir / "events.jsonl")
    assert events[-1]["type"] == "end" and events[-1]["status"] == "completed"
    for event in events:
        assert protocol.event_problems(event) == [], event
    kinds = {e["type"] for e in events}
    assert kinds == set(protocol.EVENTS) - {"error"}, "the run must exercise every event but a failure"
    assert {"running", "paused"} <= {e["status"] for e in events if e["type"] == "status"}


def test_every_reply_of_a_real_run_fits_its_definition(steered_run):
    _, replies = steered_run
    assert [r["type"] for r in replies] == ["hello", *["ack"] * 7, "error"]
    assert [r["ok"] for r in replies[1:8]] == [True, True, True, True, False, True, True]
    for reply in replies:
        assert protocol.reply_problems(reply) == [], reply


def test_a_fatal_error_and_its_end_fit_their_definitions(tmp_path):
    run_dir = tmp_path / "bad"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("training:\n  lrr: 1\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "trainer_core", "--run-dir", str(run_dir)], capture_output=True,
                         text=True, timeout=120, env=live_env(private_runtime_dir()))
    assert out.returncode == 2 and "training.lrr" in out.stderr
    events = read_events(run_dir / "events.jsonl")
    assert [e["type"] for e in events] == ["error", "end"] and events[0]["fatal"]
    for event in events:
        assert protocol.event_problems(event) == [], event


@pytest.mark.parametrize("event, needle", [
    ({"type": "step", "seq": 0, "ts": 0.0, "v": 1}, "missing 'loss'"),
    ({"type": "log", "seq": 0, "ts": 0.0, "v": 1, "level": "info", "message": "x", "extra": 1}, "unknown key 'extra'"),
    ({"type": "log", "seq": 0, "ts": 0.0, "v": 1, "level": "loud", "message": "x"}, "log.level: 'loud' is not one of"),
    ({"type": "status", "seq": "0", "ts": 0.0, "v": 1, "status": "running", "step": 0, "total_steps": 1},
     "status.seq: expected an integer"),
    ({"type": "eval", "seq": 0, "ts": 0.0, "v": 1, "step": 1, "epoch": 0.5, "eval_loss": None,
      "eval_weighted_loss": 1.0, "zone_counts": [1, 2, 3], "target_tokens": 6}, "zone_counts: expected 4 items"),
    ({"type": "checkpoint", "seq": 0, "ts": 0.0, "v": 1, "step": True, "path": "x"}, "checkpoint.step: expected"),
    ({"type": "eval", "seq": 0, "ts": 0.0, "v": 1, "kind": "generation", "step": 1, "epoch": 0.5,
      "domain_accuracy": 0.5, "domain_exact_match": 0.0, "repetition_3gram": None, "distinct_2": 1.0,
      "json_valid_rate": None, "hit_limit_rate": 0.0, "items": "2", "tokens_per_s": 3.0}, "eval.items: expected"),
    ({"type": "eval", "seq": 0, "ts": 0.0, "v": 1, "kind": "generation", "step": 1}, "missing 'examples'"),
    ({"type": "subscribe", "seq": 0}, "event type 'subscribe' is not one of"),
])
def test_a_malformed_event_is_named_precisely(event, needle):
    found = protocol.event_problems(event)
    assert any(needle in p for p in found), found


def test_an_emitter_cannot_write_an_event_the_protocol_does_not_define(tmp_path):
    from trainer_core.live.events import EventLog

    log = EventLog(tmp_path / "events.jsonl")
    with pytest.raises(protocol.ProtocolError, match="missing 'message'"):
        log.emit("log", level="info")
    with pytest.raises(protocol.ProtocolError, match="unknown key 'colour'"):
        log.emit("log", level="info", message="m", colour="red")
    with pytest.raises(protocol.ProtocolError, match="event type 'progress'"):
        log.emit("progress", step=1)
    log.close()
    assert read_events(tmp_path / "events.jsonl") == []


def test_the_cli_and_the_tui_store_read_every_event_of_a_real_run(steered_run):
    from nlirg_tui.live_commands import format_event
    from nlirg_tui.state import RunState

    run_dir, replies = steered_run
    events = read_events(run_dir / "events.jsonl")
    for event in events:
        assert not format_event(event).startswith("{"), event  # a readable line, not the raw-JSON fallback
    state = RunState()
    state.hello(replies[0])
    state.ingest(events)
    assert state.events_seen == len(events) and state.ended and state.status == "completed"
    assert state.step == 6 and state.eval_loss.count >= 2 and state.flagged


def test_every_event_type_has_a_cli_line_and_a_store_handler():
    from nlirg_tui.live_commands import _EVENT_LINES
    from nlirg_tui.state import RunState

    assert set(_EVENT_LINES) == set(protocol.EVENTS)
    assert all(callable(getattr(RunState, f"_on_{kind}", None)) for kind in protocol.EVENTS)
