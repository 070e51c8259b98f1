"""One real `nlirg ab` experiment on builtin:tiny (2 arms x 2 repeats), interrupted with Ctrl+C (SIGINT) while its
second run trains and then continued with the same command; shared by the experiment and Experiment-screen tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer_core.live.events import read_events
from trainer_core.live.rundir import read_json

WAIT_S = 300.0
"""Upper bound on waiting for the experiment; never an assertion about speed."""

DOMAIN = [
    {"instruction": "What is 3 plus 3?", "output": "The answer is 6.", "reference": "6"},
    {"instruction": "What is 4 plus 4?", "output": "The answer is 8.", "reference": ["8", "eight"]},
    {"instruction": "Return the sum of 1 and 2 as JSON.", "output": "{\"sum\": 3}"},
    {"instruction": "十加十等于多少？", "output": "答案是20。", "reference": "20"},
]
GENERAL_TEXT = [{"text": "The quick brown fox jumps over the lazy dog."}, {"text": "欢迎来到客服中心。"}]
GENERAL_INSTRUCT = [{"question": "What is 2 plus 2?", "answer": "4"}]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def ab_args(work: Path) -> list[str]:
    """The `nlirg ab` arguments of the tiny experiment (data files written into `work`)."""
    train = _jsonl(work / "train.jsonl", [{"instruction": f"What is {i} plus {i}?", "output": f"The answer is {2 * i}."}
                                          for i in range(24)])
    sets = [f"--set={s}" for s in (
        "model.path=builtin:tiny", "lora.enabled=false", "training.lr=0.003", "training.batch_size=2",
        "data.max_length=96", f"data.train={train}", "training.save_every=4",
        "eval.max_new_tokens=8", "eval.batch_size=4", f"output.root={work / 'runs'}")]
    return ["ab", *sets, "--max-steps", "20", "--repeats", "2", "--arms", "plain,nlirg",
            "--domain", str(_jsonl(work / "domain.jsonl", DOMAIN)),
            "--general", str(_jsonl(work / "text.jsonl", GENERAL_TEXT)),
            "--general", str(_jsonl(work / "instruct.jsonl", GENERAL_INSTRUCT))]


@dataclass
class TinyExperiment:
    work: Path
    args: list[str]
    exp_dir: Path
    first_code: int
    first_output: str
    second_output: str
    second_code: int
    at_interrupt: dict[str, dict] = field(default_factory=dict)
    """Per run after the Ctrl+C: trainer.json, whether eval.json existed (and its bytes), checkpoints."""

    def run_dir(self, name: str) -> Path:
        return self.exp_dir / name


def nlirg(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("nlirg")), *args]


def _training_step(run_dir: Path) -> int:
    steps = [e["step"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"]
    return max(steps, default=0)


def _interrupt_second_run(proc: subprocess.Popen, runs: Path) -> Path:
    """SIGINT the experiment once its second run has a checkpoint and is still training; return the folder."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = [p for p in runs.glob("*/experiment.json")]
        second = found[0].parent / "nlirg-r0" if found else None
        if second is not None and (second / "checkpoints" / "step-4").is_dir() and _training_step(second) < 20:
            proc.send_signal(signal.SIGINT)
            return found[0].parent
        if proc.poll() is not None:
            raise AssertionError("the experiment ended before it could be interrupted")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for the second run to train")


def _snapshot(exp_dir: Path) -> dict[str, dict]:
    out = {}
    for run_dir in sorted(p for p in exp_dir.iterdir() if (p / "config.yaml").is_file()):
        eval_file = run_dir / "eval.json"
        out[run_dir.name] = {"trainer": read_json(run_dir / "trainer.json") or {},
                             "eval": eval_file.read_bytes() if eval_file.exists() else None,
                             "checkpoints": sorted(p.name for p in (run_dir / "checkpoints").glob("step-*"))}
    return out


def build(work: Path) -> TinyExperiment:
    args = ab_args(work)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = work / "first.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(nlirg(*args), cwd=work, stdout=fh, stderr=subprocess.STDOUT, env=env)
        exp_dir = _interrupt_second_run(proc, work / "runs")
        first_code = proc.wait(timeout=WAIT_S)
    at_interrupt = _snapshot(exp_dir)
    second = subprocess.run(nlirg(*args), cwd=work, capture_output=True, text=True, timeout=WAIT_S * 2, env=env)
    return TinyExperiment(work, args, exp_dir, first_code, log.read_text(), second.stdout + second.stderr,
                          second.returncode, at_interrupt)
