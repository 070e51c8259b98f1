"""A foreground run outlives its terminal: output is best-effort, training goes on (real pipe, real CLI)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY, write_alpaca

pytestmark = pytest.mark.slow


def test_a_foreground_run_survives_its_pipe_closing_and_completes_with_its_checkpoint(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    nlirg = Path(sys.executable).with_name("nlirg")
    sets = " ".join(f"--set {shlex.quote(s)}" for s in [*TINY, f"data.train={data}", "output.name=piped"])
    # `head -1` exits after the first line, closing the pipe that carries both stdout and stderr.
    line = f"set -o pipefail; {nlirg} train {sets} --max-steps 12 2>&1 | head -1"
    out = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("run directory: ")
    run = next((tmp_path / "runs").glob("piped-*"))
    assert json.loads((run / "trainer.json").read_text())["status"] == "completed"
    assert json.loads((run / "summary.json").read_text())["steps"] == 12
    assert (run / "checkpoints" / "step-12").is_dir() and (run / "final").is_dir()
    assert "stderr closed" in (run / "trainer.log").read_text()  # noted once, where the user will look


def test_no_deepspeed_chatter_from_a_run_without_deepspeed(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl")
    nlirg = Path(sys.executable).with_name("nlirg")
    args = [x for s in [*TINY, f"data.train={data}"] for x in ("--set", s)]
    out = subprocess.run([str(nlirg), "train", *args, "--max-steps", "1"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "accelerator" not in out.stdout + out.stderr  # DeepSpeed's "Setting accelerator to CPU"
