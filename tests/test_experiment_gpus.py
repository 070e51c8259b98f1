"""`nlirg ab --gpus A,B` runs one run per device at a time: on this CPU machine the two "devices" are two
trainers side by side (CUDA_VISIBLE_DEVICES pinned per run, ignored by a CPU build), so the scheduling is real
even where no GPU is."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.experiment_fixture import WAIT_S, ab_args, nlirg
from trainer_core.live.rundir import read_json

pytestmark = pytest.mark.slow


def _with(args: list[str], flag: str, value: str) -> list[str]:
    i = args.index(flag)
    return [*args[:i + 1], value, *args[i + 2:]]


def test_gpus_train_one_run_per_device_side_by_side(tmp_path):
    args = _with(_with(ab_args(tmp_path), "--repeats", "1"), "--max-steps", "8")
    out = subprocess.run(nlirg(*args, "--gpus", "a,b"), cwd=tmp_path, capture_output=True, text=True,
                         timeout=WAIT_S, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    exp_dir = next((tmp_path / "runs").glob("*/experiment.json")).parent
    trained = {line.split(" on GPU ")[1].split(" ")[0]: line.split(" ")[0]
               for line in out.stdout.splitlines() if ": training " in line}
    assert sorted(trained) == ["a", "b"] and sorted(trained.values()) == ["nlirg-r0", "plain-r0"]
    plain, nlirg_ = (read_json(exp_dir / name / "trainer.json") for name in ("plain-r0", "nlirg-r0"))
    assert max(plain["started"], nlirg_["started"]) < min(plain["ended"], nlirg_["ended"])  # at the same time
    report = read_json(exp_dir / "report.json")
    assert report["complete"] and all(len(report["arms"][arm]["runs"]) == 1 for arm in ("plain", "nlirg"))
