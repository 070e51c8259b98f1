"""One trainer per run (issue 24): a second one on a live run is refused in one line, whoever starts it, and a
pid that now belongs to another process never makes a dead run look alive."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.live_helpers import live_env, long_detached_run, nlirg, private_runtime_dir, trainer_json
from trainer_core.live.events import read_events


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-trainer")
    with long_detached_run(tmp, live_env(private_runtime_dir())) as run:
        yield run


def _refused(res: subprocess.CompletedProcess, pid: int) -> None:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"pid {pid}" in line and "nlirg stop" in line and "nlirg attach" in line


def test_resume_of_a_live_run_is_refused_and_leaves_it_alone(live_run):
    before = trainer_json(live_run.run_dir)
    config = (live_run.run_dir / "config.yaml").read_text()
    for extra in (["--detach"], []):
        res = nlirg("train", "--resume", str(live_run.run_dir), "--set", "training.lr=0.01", *extra,
                    cwd=live_run.tmp, env=live_run.env, timeout=120)
        _refused(res, before["pid"])
    after = trainer_json(live_run.run_dir)
    assert (after["pid"], after["status"], after.get("pid_started")) == (before["pid"], "running",
                                                                         before.get("pid_started"))
    assert (live_run.run_dir / "config.yaml").read_text() == config


def test_a_second_trainer_process_on_the_run_exits_2_before_writing(live_run):
    seen = len(read_events(live_run.run_dir / "events.jsonl"))
    pid = trainer_json(live_run.run_dir)["pid"]
    res = subprocess.run([sys.executable, "-m", "trainer_core", "--run-dir", str(live_run.run_dir)],
                         capture_output=True, text=True, timeout=120, env=live_run.env)
    _refused(res, pid)
    assert trainer_json(live_run.run_dir)["pid"] == pid
    time.sleep(0.5)
    events = read_events(live_run.run_dir / "events.jsonl")
    assert len(events) >= seen and not any(e["type"] in ("error", "end") for e in events)


def test_the_workbench_relaunch_with_its_weights_is_refused(live_run):
    from nlirg_tui.launching import LaunchError, relaunch

    text = (live_run.run_dir / "config.yaml").read_text()
    with pytest.raises(LaunchError, match=f"pid {trainer_json(live_run.run_dir)['pid']}"):
        relaunch(live_run.run_dir, text, resume_weights=True)


def test_a_reused_pid_is_a_dead_run_and_nothing_waits_on_it(tmp_path):
    """trainer.json names a pid that now runs a `sleep` of ours: the run is dead (its start time says so), and
    `stop --no-wait` / `attach --stream` answer at once instead of waiting on a socket that never comes."""
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        time.sleep(1.5)  # the sleep started after the trainer did (as a reused pid always does)
        runs = tmp_path / "runs"
        for name, fields in (("old-format", {}), ("recorded", {"pid_started": time.time() - 50})):
            run_dir = runs / name
            run_dir.mkdir(parents=True)
            (run_dir / "config.yaml").write_text("model:\n  path: builtin:tiny\n")
            (run_dir / "trainer.json").write_text(json.dumps(
                {"name": name, "status": "running", "pid": sleeper.pid, "started": time.time() - 60, **fields}))
        env = live_env(private_runtime_dir())
        listing = nlirg("runs", "--root", str(runs), cwd=tmp_path, env=env, timeout=30)
        assert listing.returncode == 0 and "running" not in listing.stdout, listing.stdout
        assert listing.stdout.count(" dead ") == 2, listing.stdout
        for name in ("old-format", "recorded"):
            stop = nlirg("stop", name, "--no-wait", "--root", str(runs), cwd=tmp_path, env=env, timeout=20)
            assert stop.returncode == 2 and "not running (status dead)" in stop.stderr, stop.stderr
            attach = nlirg("attach", name, "--stream", "--root", str(runs), cwd=tmp_path, env=env, timeout=20)
            assert attach.returncode == 0, attach.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
