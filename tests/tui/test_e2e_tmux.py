"""End to end: the real `nlirg demo` binary in tmux, read from the screen: pause, quit leaving the run going,
re-attach (the full view comes back from the replay), then quit stopping it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.tui.conftest import WAIT_S, stop_trainer, write_data
from trainer_core.live.processes import pid_alive
from trainer_core.live.rundir import read_json

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Tmux:
    """One private tmux server (its own socket name) with an 80x24 shell."""

    def __init__(self, cwd: Path, env: dict[str, str]):
        self.name = f"nlirg-e2e-{uuid.uuid4().hex[:8]}"
        self.tmux("new-session", "-d", "-s", "e2e", "-x", "80", "-y", "24", "-c", str(cwd), "bash --norc --noprofile",
                  env=env)

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["tmux", "-L", self.name, *args], capture_output=True, text=True, check=True,
                              env=env).stdout

    def type(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "e2e", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "e2e")

    def wait_for(self, *texts: str) -> str:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(t in screen for t in texts):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"never saw {texts} on the screen; last screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.name, "kill-server"], capture_output=True)


def test_demo_pause_quit_leaving_it_running_and_reattach(tmp_path):
    data = write_data(tmp_path / "train.jsonl")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TERM": "xterm-256color"}
    sets = ["model.path=builtin:tiny", "lora.enabled=false", f"data.train={data}", "data.eval_fraction=0",
            "data.max_length=96", "training.batch_size=2", "training.eval_every=0", "training.save_every=0",
            f"output.root={tmp_path / 'runs'}"]
    cmd = "nlirg demo " + " ".join(f"--set {s}" for s in sets) + " --max-steps 100000"
    term = Tmux(tmp_path, env)
    run_dir = None
    try:
        term.type(cmd, "Enter")
        term.wait_for("running", " lr ", "Loss")  # a live run: status and its LR in the header
        runs = list((tmp_path / "runs").iterdir())
        assert len(runs) == 1
        run_dir = runs[0]
        term.type("p")
        term.wait_for("paused", "pause: ok at step")
        term.type("q")
        term.wait_for("Leave", "running?")
        term.type("Enter")  # the default: leave it going
        deadline = time.monotonic() + WAIT_S
        while "Loss" in term.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_alive(read_json(run_dir / "trainer.json")["pid"])
        assert read_json(run_dir / "trainer.json")["status"] == "paused"

        term.type(f"nlirg attach {run_dir.name} --root runs", "Enter")
        screen = term.wait_for("paused", " lr ", "Loss", "step")
        assert "pause" in screen
        term.type("6")  # the log pane: the pause command came back with the replay
        term.wait_for("command pause", "applied at step")
        term.type("q")
        term.wait_for("Leave", "running?")
        term.type("Tab", "Enter")  # "Stop the run"
        deadline = time.monotonic() + WAIT_S
        while pid_alive(read_json(run_dir / "trainer.json")["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert read_json(run_dir / "trainer.json")["status"] == "stopped"
    finally:
        term.kill()
        if run_dir is not None:
            stop_trainer(run_dir)
