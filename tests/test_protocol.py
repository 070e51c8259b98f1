"""Protocol v1 (docs/design.md §4): framing, limits, client-message validation, socket path rules."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from trainer_core.config import ConfigError, NlirgParams
from trainer_core.live import control, protocol, sockets
from trainer_core.live.protocol import ProtocolError


def test_encode_decode_round_trip_adds_version_and_one_line():
    line = protocol.encode(protocol.command("c1", "set", {"lr_scale": 0.5, "note": "中文"}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = protocol.decode(line)
    assert obj == {"v": 1, "type": "command", "id": "c1", "name": "set", "args": {"lr_scale": 0.5, "note": "中文"}}


@pytest.mark.parametrize("raw, needle", [
    (b"\xff\xfe garbage", "not UTF-8"),
    (b"{not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"type": "replay"}', "protocol version"),
    (b'{"v": 2, "type": "replay"}', "protocol version"),
    (b'{"v": 1}', 'missing "type"'),
    (b'{"v": 1, "type": 7}', 'missing "type"'),
])
def test_decode_rejects_bad_lines_with_a_reason(raw, needle):
    with pytest.raises(ProtocolError, match=needle):
        protocol.decode(raw)


def test_encode_refuses_nan():
    with pytest.raises(ValueError):
        protocol.encode({"type": "step", "loss": float("nan")})


def test_line_reader_splits_and_keeps_partial_lines():
    reader = protocol.LineReader()
    assert reader.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert reader.feed(b':2}\n\n') == [b'{"b":2}', b""]


def test_line_reader_refuses_an_oversize_line_before_its_newline():
    reader = protocol.LineReader(limit=100)
    reader.feed(b"x" * 100)
    with pytest.raises(ProtocolError, match="limit"):
        reader.feed(b"x")


def test_line_reader_refuses_an_oversize_line_within_one_chunk():
    reader = protocol.LineReader(limit=10)
    with pytest.raises(ProtocolError, match="limit"):
        reader.feed(b"y" * 11 + b"\nok\n")


def test_default_limit_is_one_mib():
    assert protocol.MAX_LINE_BYTES == 1024 * 1024
    reader = protocol.LineReader()
    assert reader.feed(b"z" * protocol.MAX_LINE_BYTES + b"\n") == [b"z" * protocol.MAX_LINE_BYTES]


def test_a_reader_skips_and_counts_lines_that_are_no_protocol_message():
    """What a replay of a damaged events.jsonl sends: the clients keep the events around the junk."""
    event = protocol.encode({"type": "log", "seq": 3, "ts": 0.0, "level": "info", "message": "kept"})
    junk = b'12\n\x00garbage{\n{"v": 1, "type": "log", "seq": "x"}\n\n'
    messages, bad = protocol.LineReader().messages(junk + event + b'{"v": 1, "type"')
    assert [m["message"] for m in messages] == ["kept"] and bad == 3


@pytest.mark.parametrize("obj, expected", [
    ({"type": "replay", "from_seq": 5}, protocol.Replay(5)),
    ({"type": "replay"}, protocol.Replay(0)),
    ({"type": "command", "id": 3, "name": "pause"}, protocol.CommandRequest(3, "pause", {})),
    ({"type": "command", "id": "x", "name": "set", "args": {"nlirg.k": 2}},
     protocol.CommandRequest("x", "set", {"nlirg.k": 2})),
])
def test_parse_client_message_accepts_valid_messages(obj, expected):
    assert protocol.parse_client_message({"v": 1, **obj}) == expected


@pytest.mark.parametrize("obj, needle", [
    ({"type": "replay", "from_seq": -1}, "from_seq"),
    ({"type": "replay", "from_seq": "3"}, "from_seq"),
    ({"type": "replay", "from_seq": True}, "from_seq"),
    ({"type": "command", "id": 1, "name": "explode"}, "unknown command"),
    ({"type": "command", "id": 1, "name": "set", "args": [1]}, "args must be an object"),
    ({"type": "command", "id": [1], "name": "pause"}, "command.id"),
    ({"type": "subscribe"}, "unknown message type"),
])
def test_parse_client_message_names_the_problem(obj, needle):
    with pytest.raises(ProtocolError, match=needle):
        protocol.parse_client_message({"v": 1, **obj})


def test_the_trainer_understands_every_command_and_setting_the_protocol_names():
    assert protocol.COMMANDS == ("pause", "resume", "save", "stop", "set", "ping", "generate")
    assert control.validate_command("generate", {"prompt": "hi", "max_new_tokens": 8}) is None
    assert "needs a prompt" in control.validate_command("generate", {})
    for name in protocol.COMMANDS:
        if name not in ("set", "generate"):
            assert control.validate_command(name, {}) is None, name
            assert control.validate_command(name, {"x": 1}) == f"{name} takes no arguments"
    defaults = NlirgParams()
    for key, hint in protocol.SETTABLE.items():
        nlirg = protocol.nlirg_key(key)
        value = getattr(defaults, nlirg) if nlirg else {int: 3, float: 0.5}[hint]
        assert control.validate_command("set", {key: value}) is None, key
    assert "cannot be set" in control.validate_command("set", {"training.lr": 1.0})


def test_a_refused_commands_error_names_the_key_and_never_grows_with_the_value():
    long = control.validate_command("set", {"lr_scale": "x" * 3000})
    assert long.startswith("lr_scale: expected a number, got 'xxx") and len(long) < 120, long
    for value in ([1], {"a": [1] * 5000}, "x" * 3000):
        error = control.validate_command("set", {"nlirg.weighting": value})
        assert error.startswith("nlirg.weighting: ") and error.endswith("is not one of nlirg, plain, dft"), error
        assert len(error) < 140, error
    assert len(control.validate_command("set", {"k" * 3000: 1})) < 400  # the key, cut, then the settable keys


def test_a_protocol_error_carries_the_commands_id_once_it_is_usable():
    def refusal(obj: dict, size: int = 0) -> ProtocolError:
        with pytest.raises(ProtocolError) as caught:
            protocol.parse_client_message({"v": 1, "type": "command", **obj}, size)
        return caught.value

    assert refusal({"id": "a", "name": "explode"}).cmd_id == "a"
    assert refusal({"id": 7, "name": "set", "args": "lr_scale=2"}).cmd_id == 7
    assert refusal({"id": 8, "name": "ping"}, size=protocol.MAX_COMMAND_BYTES + 1).cmd_id == 8
    assert refusal({"id": "x" * (protocol.MAX_ID_CHARS + 1), "name": "ping"}).cmd_id is None
    assert refusal({"id": True, "name": "ping"}).cmd_id is None
    assert refusal({"name": [1]}).cmd_id is None


def test_replies_have_no_seq_and_events_do():
    assert not protocol.is_event(protocol.ack(1, True, None, 3))
    assert not protocol.is_event(protocol.error_reply("bad"))
    assert protocol.is_event(json.loads('{"v": 1, "type": "step", "seq": 0}'))


def test_socket_path_fits_the_limit_for_any_run_depth(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    deep = tmp_path.joinpath(*(["a_rather_long_folder_name"] * 20), "run-20260101-000000")
    path = sockets.socket_path(deep)
    assert len(str(path).encode()) <= sockets.SOCKET_PATH_LIMIT
    assert path.parent == Path("/tmp") / f"nlirg-{os.getuid()}"
    assert sockets.socket_path(deep) == path and sockets.socket_path(tmp_path) != path


def test_socket_dir_prefers_xdg_runtime_dir_and_falls_back_when_too_long(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert sockets.socket_dir() == Path("/run/user/1000/nlirg")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/" + "x" * 120)
    assert sockets.socket_dir() == Path("/tmp") / f"nlirg-{os.getuid()}"
    assert len(str(sockets.socket_path(tmp_path)).encode()) <= sockets.SOCKET_PATH_LIMIT


def test_ensure_socket_dir_is_private(tmp_path):
    loose = tmp_path / "nlirg"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    sockets.ensure_socket_dir(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    fresh = tmp_path / "fresh" / "nlirg"
    sockets.ensure_socket_dir(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_many_unknown_set_keys_get_one_short_refusal():
    """The settable keys were listed once per unknown key: one 8 KiB `set` drew a ~450 KB ack."""
    with pytest.raises(ConfigError) as info:
        control.parse_set_args({f"no_such_key_{i}": 1 for i in range(400)}, NlirgParams())
    message = str(info.value)
    assert "no_such_key_0" in message and "no_such_key_4 ..." in message and "no_such_key_5" not in message
    assert message.count("settable:") == 1 and len(message) < 1000


def test_a_set_is_one_typed_change_that_the_config_takes():
    """`set` reaches the trainer as a LiveSet (no setattr by key name): its fields are SETTABLE's other keys, and
    `apply` writes NLIRG, the intervals and the flag threshold into the run's config."""
    from dataclasses import fields

    from trainer_core.config import build_config
    from trainer_core.config.live_set import LiveSet

    assert {f.name for f in fields(LiveSet)} - {"nlirg"} == {k for k in protocol.SETTABLE if "." not in k}
    cfg = build_config(None, [])
    change = control.parse_set_args({"k": 2.5, "log_every": 3, "flag_threshold": 7.5, "lr_scale": 0.5}, cfg.nlirg)
    change.apply(cfg)
    assert (cfg.nlirg.k, cfg.training.log_every, cfg.telemetry.flag_threshold) == (2.5, 3, 7.5)
    assert change.lr_scale == 0.5 and change.save_every is None

