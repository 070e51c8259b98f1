"""A full disk never kills the run or corrupts what was written: a real, tiny tmpfs fills up under a trainer."""

import os
import subprocess
import uuid

import pytest

from tests.helpers import TINY, make_config, write_alpaca
from trainer_core.live.events import EventLog, read_events
from trainer_core.live.rundir import read_json, record_trainer_json


@pytest.fixture()
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk):
    filler = disk / f"filler-{uuid.uuid4().hex}"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def test_full_disk_keeps_training_and_events_then_writes_them_when_space_returns(tmp_path, tiny_disk, caplog):
    from trainer_core.train.loop import Trainer

    data = write_alpaca(tmp_path / "d.jsonl")
    run_dir = tiny_disk / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    seen = []
    events.subscribe(lambda event, line: seen.append(event))
    # Every sample flagged (threshold 0): flagged.jsonl is written at every step. TensorBoard appends ~400 bytes a
    # step, which the slack of its file's last tmpfs page takes for ~10 steps: 16 steps meet the full disk.
    cfg = make_config([*TINY, f"data.train={data}", "training.max_steps=16", "training.save_every=8",
                       "training.eval_at_start=false", "telemetry.flag_threshold=0"])
    trainer = Trainer(cfg, run_dir, events)
    trainer.setup()
    record_trainer_json(run_dir, status="starting", pid=os.getpid())
    filler = _fill(tiny_disk)
    status = trainer.fit()  # must not raise

    assert status == "failed" and trainer.step == 16  # trained to the end; only the writes failed
    record = read_json(run_dir / "trainer.json")  # the disk still full at exit: the run is recorded as failed
    assert record["status"] == "failed" and "final model not written" in record["error"] and record["ended"]
    errors = [e["message"] for e in seen if e["type"] == "error"]
    assert any("checkpoint at step 8 failed" in m and "free disk space" in m for m in errors)
    assert any("final model not written" in m for m in errors)
    assert any(m.startswith("TensorBoard logging stopped at step") and "free disk space" in m for m in errors)
    assert any("flagged.jsonl not written" in r.getMessage() for r in caplog.records)
    assert any(e["type"] == "flagged" for e in seen)  # the live view still gets them
    assert seen[-1]["type"] == "end" and seen[-1]["reason"] == "disk"
    assert not list((run_dir / "checkpoints").glob(".tmp-*")) if (run_dir / "checkpoints").exists() else True
    assert not (run_dir / "final").exists() and not (run_dir / ".tmp-final").exists()

    os.unlink(filler)  # space returns: the held events are written, in order, before the next one
    events.emit("log", level="info", message="space is back")
    events.close()
    on_disk = read_events(run_dir / "events.jsonl")
    assert [e["seq"] for e in on_disk] == [e["seq"] for e in seen] == list(range(len(seen)))  # the listener saw it too
    assert on_disk[-1]["message"] == "space is back"


def test_a_replay_while_the_disk_is_full_gets_the_held_events_too(tmp_path, tiny_disk, monkeypatch):
    """Found by bench.soak: a client that joined while events waited in memory for disk space got the file's
    events, then the live ones, and never the held ones between them."""

    from tests.live_helpers import private_runtime_dir, server_owner
    from trainer_core.live import sockets
    from trainer_core.live.client import LiveClient
    from trainer_core.live.server import LiveServer

    monkeypatch.setenv("XDG_RUNTIME_DIR", private_runtime_dir())
    run_dir = tiny_disk / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    owner = server_owner(run_dir, events, 10)
    server = LiveServer(owner, sockets.socket_path(run_dir))
    server.start()
    try:
        for i in range(3):
            events.emit("log", level="info", message=f"on disk {i}")
        filler = _fill(tiny_disk)
        for i in range(3):
            events.emit("log", level="info", message=f"held {i} " + "x" * 4000)  # seq 3..5: more than the file's
            # last tmpfs page has left, so in memory only
        assert len(read_events(run_dir / "events.jsonl")) == 3
        with LiveClient(server.path) as client:
            stream = client.stream(0)
            got = [next(stream) for _ in range(6)]
            os.unlink(filler)
            events.emit("end", status="completed", reason="completed")  # space is back: written, and sent live
            got += list(stream)
    finally:
        server.close()
        events.close()
    assert [e["seq"] for e in got] == list(range(7))
    assert [e["message"][:6] for e in got[3:6]] == [f"held {i}" for i in range(3)]


def test_a_set_refused_for_a_full_disk_changes_nothing_and_says_what_to_do(tmp_path, tiny_disk):
    """A live `set` is saved to config.yaml with the run; while the disk is full it is refused in one line naming
    the file and what to do, and the run keeps its old values (it used to change them and still say refused)."""
    from trainer_core.config import build_config
    from trainer_core.live.control import Command
    from trainer_core.train.loop import Trainer

    data = write_alpaca(tmp_path / "d.jsonl")
    run_dir = tiny_disk / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    trainer = Trainer(make_config([*TINY, f"data.train={data}", "training.max_steps=4"]), run_dir, events)
    trainer.setup()
    before = trainer.params.k
    acks: list[dict] = []
    filler = _fill(tiny_disk)
    trainer._apply(Command("set", args={"k": before + 1.0, "lr_scale": 0.5}, id=1, ack=acks.append))
    assert not acks[-1]["ok"]
    assert acks[-1]["error"].startswith("set not applied: cannot write ") and "config.yaml" in acks[-1]["error"]
    assert "No space left on device" in acks[-1]["error"] and "free space" in acks[-1]["error"]
    assert trainer.params.k == before and trainer.lr_scale == 1.0
    os.unlink(filler)
    trainer._apply(Command("set", args={"k": before + 1.0}, id=2, ack=acks.append))
    assert acks[-1]["ok"] and trainer.params.k == before + 1.0
    assert build_config(run_dir / "config.yaml").nlirg.k == before + 1.0
    events.close()
