"""A foreground run outlives its terminal: output is best-effort, training goes on (real pipe, real CLI)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY, make_config, write_alpaca
from trainer_core.live.launch import prepare_run

pytestmark = pytest.mark.slow


def _piped(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """`command 2>&1 | head -1`: head exits after the first line, closing the pipe for stdout and stderr."""
    return subprocess.run(["bash", "-c", f"set -o pipefail; {command} 2>&1 | head -1"], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def _completed_with_checkpoint(run: Path, steps: int) -> None:
    assert json.loads((run / "trainer.json").read_text())["status"] == "completed"
    assert json.loads((run / "summary.json").read_text())["steps"] == steps
    assert (run / "checkpoints" / f"step-{steps}").is_dir() and (run / "final").is_dir()


def test_a_foreground_run_survives_its_pipe_closing_and_completes_with_its_checkpoint(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    nlirg = Path(sys.executable).with_name("nlirg")
    sets = " ".join(f"--set {shlex.quote(s)}" for s in [*TINY, f"data.train={data}", "output.name=piped"])
    out = _piped(f"{nlirg} train {sets} --max-steps 12", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(out.stdout.splitlines()) == 1  # head took its line and left; everything after went nowhere
    _completed_with_checkpoint(next((tmp_path / "runs").glob("piped-*")), 12)


def test_the_trainer_itself_outlives_a_closed_pipe_and_notes_it(tmp_path):
    """The trainer process on its own (the launcher above already shields it): its progress hits the closed pipe."""
    data = write_alpaca(tmp_path / "d.jsonl")
    cfg = make_config([*TINY, f"data.train={data}", f"output.root={tmp_path / 'runs'}", "training.max_steps=12"])
    run = prepare_run(cfg, "direct")
    out = _piped(f"{shlex.quote(sys.executable)} -m trainer_core --run-dir {shlex.quote(str(run))} --progress",
                 tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    _completed_with_checkpoint(run, 12)
    assert "stderr closed" in (run / "trainer.log").read_text()  # noted once, where the user will look


def test_no_deepspeed_chatter_from_a_run_without_deepspeed(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    nlirg = Path(sys.executable).with_name("nlirg")
    args = [x for s in [*TINY, f"data.train={data}"] for x in ("--set", s)]
    out = subprocess.run([str(nlirg), "train", *args, "--max-steps", "1"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "accelerator" not in out.stdout + out.stderr  # DeepSpeed's "Setting accelerator to CPU"
