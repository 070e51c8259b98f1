"""Checkpoints by default: a run killed at any moment resumes out of the box (training.save_every and
training.save_every_minutes), through the real CLI on builtin:tiny."""

from __future__ import annotations

import os
import signal

import pytest

from tests.helpers import TINY, train_in_process, write_alpaca
from tests.live_helpers import (
    live_env,
    nlirg,
    private_runtime_dir,
    start_detached,
    terminate,
    trainer_json,
    wait_for,
    wait_for_exit,
)
from trainer_core.config import RunConfig
from trainer_core.live.events import read_events
from trainer_core.live.rundir import checkpoint_dirs


def test_the_defaults_checkpoint_by_steps_and_by_time():
    t = RunConfig().training
    assert t.save_every == 500 and t.save_every_minutes == 30.0 and t.save_total_limit == 2


def test_a_time_floor_checkpoints_a_run_whose_step_interval_never_comes(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    run = tmp_path / "timed"
    # 0.0001 minutes: due at every step boundary, so each step but the last queues one save.
    train_in_process(run, [*TINY, f"data.train={data}", "training.max_steps=4", "training.save_every=0",
                           "training.save_every_minutes=0.0001", "training.save_total_limit=0"])
    saves = [e for e in read_events(run / "events.jsonl") if e["type"] == "command" and e["name"] == "save"]
    assert saves and all(e["source"] == "timer (training.save_every_minutes)" for e in saves)
    assert len(checkpoint_dirs(run)) >= 3  # timed ones at steps 1..3, plus the end's


@pytest.mark.slow
def test_a_killed_run_resumes_out_of_the_box(tmp_path):
    env = live_env(private_runtime_dir())
    run_dir = start_detached(tmp_path, env, extra=["training.save_every_minutes=0.02"])  # save_every=0 there
    try:
        ckpt = wait_for(lambda: checkpoint_dirs(run_dir), "a time-based checkpoint", every=0.2)[-1]
        pid = trainer_json(run_dir)["pid"]
        os.kill(pid, signal.SIGKILL)  # a crash: no stop, no final checkpoint
        wait_for_exit(pid)
    finally:
        terminate(run_dir)
    step = int(checkpoint_dirs(run_dir)[-1].name.split("-")[1])
    assert step >= int(ckpt.name.split("-")[1]) >= 1
    res = nlirg("train", "--resume", run_dir.name, "--max-steps", str(step + 2), cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert f"resumed from checkpoints/step-{step} at step {step}" in (run_dir / "trainer.log").read_text()
    assert trainer_json(run_dir)["status"] == "completed"
