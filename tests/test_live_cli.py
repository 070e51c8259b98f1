"""`nlirg train --detach / runs / attach / pause / set / resume / save / stop` against real detached trainers,
signals, and a SIGKILLed trainer reported dead with its socket cleaned by the next launch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from nlirg_tui.live_commands import runs_table
from tests.helpers import TINY, make_config, nlirg_cli, write_alpaca, write_odd_experiments
from tests.live_helpers import (
    LONG,
    live_env,
    nlirg,
    private_runtime_dir,
    start_detached,
    terminate,
    trainer_json,
    wait_for_exit,
    wait_for_socket,
    wait_for_step,
)
from trainer_core.live import sockets
from trainer_core.live.events import read_events
from trainer_core.live.launch import prepare_run
from trainer_core.live.rundir import read_json, write_json_atomic
from trainer_core.live.runs import RunNotFound, find_runs, resolve_run, run_info


@pytest.fixture
def env():
    return live_env(private_runtime_dir())


@pytest.mark.slow
def test_detach_list_steer_stop_and_replay(tmp_path, env):
    run_dir = start_detached(tmp_path, env)
    try:
        info = trainer_json(run_dir)
        pid = info["pid"]
        assert os.getsid(pid) == pid, "the trainer leads its own session: a dropped SSH session cannot reach it"
        sock = wait_for_socket(run_dir)
        assert len(str(sock).encode()) <= sockets.SOCKET_PATH_LIMIT
        wait_for_step(run_dir, 2)

        listed = nlirg("runs", "--root", str(tmp_path / "runs"), cwd=tmp_path, env=env)
        assert listed.returncode == 0, listed.stderr
        row = listed.stdout.splitlines()[1].split()
        assert row[0] == run_dir.name and row[1] == "running" and row[2].endswith(f"/{LONG}")

        assert nlirg("pause", "train", cwd=tmp_path, env=env).returncode == 0
        paused_at = read_json(run_dir / "trainer.json")["status"]
        assert paused_at == "paused"
        again = nlirg("pause", "train", cwd=tmp_path, env=env)  # says it already is, changes nothing
        assert again.returncode == 2 and "pause refused: the run is already paused (since step" in again.stderr
        set_out = nlirg("set", run_dir.name[:8], "lr_scale=0.5", "nlirg.k=2.5", "nlirg.weighting=dft", "log_every=2",
                        "flag_threshold=9", cwd=tmp_path, env=env)
        assert set_out.returncode == 0, set_out.stderr
        bad = nlirg("set", "train", "lr_scale=fast", cwd=tmp_path, env=env)
        assert bad.returncode == 2 and "lr_scale" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        assert nlirg("resume", str(run_dir), cwd=tmp_path, env=env).returncode == 0
        running = nlirg("resume", "train", cwd=tmp_path, env=env)
        assert running.returncode == 2 and "resume refused: the run is not paused; it is running" in running.stderr
        assert nlirg("save", "train", cwd=tmp_path, env=env).returncode == 0
        stopped = nlirg("stop", "train", cwd=tmp_path, env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped at step" in stopped.stdout
        wait_for_exit(pid)
    finally:
        terminate(run_dir)

    events = read_events(run_dir / "events.jsonl")
    assert [e["seq"] for e in events] == list(range(len(events)))
    commands = [e for e in events if e["type"] == "command"]
    assert [c["name"] for c in commands] == ["pause", "set", "resume", "save", "stop"]
    assert commands[1]["args"] == {"lr_scale": 0.5, "nlirg.k": 2.5, "nlirg.weighting": "dft", "log_every": 2,
                                   "flag_threshold": 9}
    assert all(isinstance(c["applied_at_step"], int) and c["source"] for c in commands)
    assert sum(e["type"] == "checkpoint" for e in events) == 2  # `save`, then the one `stop` writes
    assert events[-1]["type"] == "end" and events[-1]["status"] == "stopped"
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "stopped" and summary["weighting"] == "dft"
    config = (run_dir / "config.yaml").read_text()
    assert "k: 2.5" in config and "log_every: 2" in config and "flag_threshold: 9" in config
    set_step = commands[1]["applied_at_step"]
    after = [e for e in events if e["type"] == "step" and e["step"] > set_step + 1]
    assert after and all(e["step"] % 2 == 0 or e is after[-1] for e in after), "log_every=2 took effect"
    assert not socket_exists(trainer_json(run_dir)["socket"])

    # A finished run replays from events.jsonl alone.
    replay = nlirg("attach", "train", "--stream", "--json", cwd=tmp_path, env=env)
    assert replay.returncode == 0, replay.stderr
    assert [json.loads(line) for line in replay.stdout.splitlines()] == events
    text = nlirg("attach", "train", cwd=tmp_path, env=env)
    assert text.stdout.splitlines()[-1].startswith("end stopped")
    assert "command set" in text.stdout

    listed = nlirg("runs", "--root", str(tmp_path / "runs"), cwd=tmp_path, env=env)
    assert listed.stdout.splitlines()[1].split()[1] == "stopped"
    refused = nlirg("pause", "train", cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "not running (status stopped)" in refused.stderr


def socket_exists(path: str) -> bool:
    return os.path.exists(path)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_like_the_stop_command_and_exits_zero(tmp_path, env, signum):
    """Started as our own child (a detached trainer is not), so its exit code can be checked."""
    data = write_alpaca(tmp_path / "train.jsonl")
    cfg = make_config([*TINY, f"data.train={data}", f"output.root={tmp_path / 'runs'}", "data.eval_fraction=0",
                       f"training.max_steps={LONG}", "training.save_every=0", "training.eval_every=0"])
    run_dir = prepare_run(cfg, "sig")
    proc = subprocess.Popen([sys.executable, "-m", "trainer_core", "--run-dir", str(run_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_step(run_dir, 3)
        proc.send_signal(signum)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    events = read_events(run_dir / "events.jsonl")
    assert events[-1]["type"] == "end" and events[-1]["status"] == "stopped"
    stop = [e for e in events if e["type"] == "command"][-1]
    assert stop["name"] == "stop" and signal.Signals(signum).name in stop["source"]
    assert read_json(run_dir / "summary.json")["status"] == "stopped"
    assert trainer_json(run_dir)["status"] == "stopped"
    assert any(e["type"] == "checkpoint" for e in events)
    assert "Traceback" not in (run_dir / "trainer.log").read_text()


@pytest.mark.slow
def test_sigkilled_trainer_is_dead_and_its_socket_is_cleaned_by_the_next_launch(tmp_path, env):
    run_dir = start_detached(tmp_path, env)
    try:
        sock = wait_for_socket(run_dir)
        wait_for_step(run_dir, 1)
        pid = trainer_json(run_dir)["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for_exit(pid)
    finally:
        terminate(run_dir)
    assert trainer_json(run_dir)["status"] == "running", "nothing could update it: that is the point"
    assert os.path.exists(sock), "a SIGKILLed trainer leaves its socket file behind"
    listed = nlirg("runs", "--root", str(tmp_path / "runs"), cwd=tmp_path, env=env)
    assert listed.stdout.splitlines()[1].split()[:2] == [run_dir.name, "dead"]
    attach = nlirg("attach", run_dir.name, "--stream", cwd=tmp_path, env=env)
    assert attach.returncode == 0 and any(line.startswith("status running") for line in attach.stdout.splitlines())
    refused = nlirg("stop", run_dir.name, cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "status dead" in refused.stderr

    second = start_detached(tmp_path, env)
    try:
        # Straight after the launch, before the trainer has a socket: `stop` waits for it instead of failing.
        stopped = nlirg("stop", second.name, cwd=tmp_path, env=env)
        assert stopped.returncode == 0, stopped.stderr
        wait_for_exit(trainer_json(second)["pid"])
    finally:
        terminate(second)
    assert not os.path.exists(sock), "the next launch removed the dead run's socket"
    assert run_info(second).status == "stopped"


# ---------------------------------------------------------------------------------------------- fast: run lookup
def _fake_run(root, name: str, status: str, pid: int | None = None, started: float = 0.0):
    run_dir = root / name
    run_dir.mkdir(parents=True)
    # This process stands in for a live trainer: its trainer.json names it with its start time, as a trainer's does.
    own = {"pid_started": psutil.Process().create_time()} if pid == os.getpid() else {}
    write_json_atomic(run_dir / "trainer.json", {"name": name.rsplit("-", 2)[0], "status": status, "pid": pid,
                                                  "started": started, **own})
    return run_dir


def test_resolve_run_by_directory_name_and_prefix(tmp_path):
    root = tmp_path / "runs"
    a = _fake_run(root, "alpha-20260101-000000", "completed", started=1)
    b = _fake_run(root, "beta-20260101-000000", "completed", started=2)
    assert resolve_run(str(a), root) == a.resolve()
    assert resolve_run("alpha-20260101-000000", root) == a.resolve()
    assert resolve_run("be", root) == b.resolve()
    with pytest.raises(RunNotFound, match="no run of that name"):
        resolve_run("gamma", root)
    with pytest.raises(RunNotFound, match="no runs folder"):
        resolve_run("alpha", tmp_path / "elsewhere")


def test_an_ambiguous_name_picks_the_one_live_run_or_refuses(tmp_path):
    root = tmp_path / "runs"
    _fake_run(root, "demo-20260101-000000", "completed", started=1)
    live = _fake_run(root, "demo-20260102-000000", "running", pid=os.getpid(), started=2)
    assert resolve_run("demo", root) == live.resolve()
    _fake_run(root, "demo-20260103-000000", "completed", started=3)
    write_json_atomic(live / "trainer.json", {"status": "completed"})
    with pytest.raises(RunNotFound, match="matches 3 runs"):
        resolve_run("demo", root)


def test_runs_list_live_first_and_marks_a_vanished_pid_dead(tmp_path):
    root = tmp_path / "runs"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _fake_run(root, "old-20260101-000000", "completed", started=time.time() - 100)
    _fake_run(root, "ghost-20260101-000000", "running", pid=gone.pid, started=time.time())
    _fake_run(root, "me-20260101-000000", "running", pid=os.getpid(), started=time.time() - 200)
    runs = find_runs(root)
    assert [(r.run_dir.name, r.status) for r in runs] == [
        ("me-20260101-000000", "running"), ("ghost-20260101-000000", "dead"), ("old-20260101-000000", "completed")]
    assert runs[1].error.endswith("before its first checkpoint; start it again")
    (root / "ghost-20260101-000000" / "checkpoints" / "step-3").mkdir(parents=True)
    (root / "ghost-20260101-000000" / "checkpoints" / "step-3" / "COMPLETE").touch()  # a whole checkpoint
    assert run_info(root / "ghost-20260101-000000").error.endswith(
        f"continue it with: nlirg train --resume {root / 'ghost-20260101-000000'}")


def test_runs_table_prints_the_first_line_of_a_failed_runs_error_under_it(tmp_path):
    root = tmp_path / "runs"
    run = _fake_run(root, "bad-20260101-000000", "failed")
    write_json_atomic(run / "trainer.json", {**read_json(run / "trainer.json"),
                                             "error": "d.jsonl:2: not valid JSON\nmore detail"})
    lines = runs_table(find_runs(root))
    assert lines[1].split()[:2] == ["bad-20260101-000000", "failed"]
    assert lines[2] == "  └ d.jsonl:2: not valid JSON"


def test_a_run_whose_trainer_json_is_damaged_is_listed_not_a_traceback(tmp_path):
    """A binary trainer.json (UnicodeDecodeError) or a JSON that is no object crashed run_info's `.get`."""
    root = tmp_path / "runs"
    _fake_run(root, "ok-20260101-000000", "completed", started=1)
    (root / "binary-20260101-000000").mkdir()
    (root / "binary-20260101-000000" / "trainer.json").write_bytes(b"\xff\xfe\x00garbage")
    (root / "list-20260101-000000").mkdir()
    (root / "list-20260101-000000" / "trainer.json").write_text("[1, 2]")
    assert {r.run_dir.name: r.status for r in find_runs(root)} == {
        "ok-20260101-000000": "completed", "binary-20260101-000000": "created", "list-20260101-000000": "created"}


def test_runs_lists_what_it_can_and_names_each_unreadable_experiment(tmp_path):
    write_odd_experiments(tmp_path / "runs")
    res = nlirg_cli("runs", "--root", str(tmp_path / "runs"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "solo-20260101-000000" in res.stdout and "EXPERIMENT trimmed  incomplete" in res.stdout
    assert "(? x ?, ?)" in res.stdout  # the trimmed spec's missing keys
    problems = res.stderr.splitlines()
    assert len(problems) == 2 and "Traceback" not in res.stderr
    assert problems[0].startswith(f"{tmp_path / 'runs' / 'binary' / 'experiment.json'}: skipped")
    assert problems[1].startswith(f"{tmp_path / 'runs' / 'no-runs' / 'experiment.json'}: skipped")
    assert problems[1].endswith("(no 'runs'); fix or remove it")
