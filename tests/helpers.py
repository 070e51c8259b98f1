"""Shared helpers for tests: small data files and in-process or subprocess trainer runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from trainer_core.config import RunConfig, build_config
from trainer_core.live.events import read_events

REPO = Path(__file__).resolve().parent.parent

TINY = ["model.path=builtin:tiny", "lora.enabled=false", "training.lr=0.003", "training.batch_size=2",
        "data.max_length=96", "training.log_every=1"]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """The one writer of test data: one JSON object a line, UTF-8, non-ASCII kept."""
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def write_alpaca(path: Path, n: int = 24, system_every: int = 3) -> Path:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        rec: dict[str, Any] = {"instruction": f"What is {i} plus {i}?", "input": "",
                               "output": f"The answer is {2 * i}. 答案是{2 * i}。"}
        if system_every and i % system_every == 0:
            rec["system"] = "Answer briefly."
        rows.append(rec)
    return write_jsonl(path, rows)


def write_text(path: Path, n: int = 12) -> Path:
    return write_jsonl(path, [{"text": f"Document {i}. " + "The quick brown fox jumps. " * (1 + i % 4)}
                              for i in range(n)])


def make_config(overrides: list[str]) -> RunConfig:
    return build_config(None, overrides)


def train_in_process(run_dir: Path, overrides: list[str], resume: Path | None = None, before_fit=None,
                     keep_lr_scale: bool = False):
    """Run a Trainer in this process (fast: no interpreter start); return (trainer, status)."""
    from trainer_core.__main__ import generation_probe
    from trainer_core.live.events import EventLog
    from trainer_core.train.loop import Trainer

    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = make_config(overrides)
    events = EventLog(run_dir / "events.jsonl")
    trainer = Trainer(cfg, run_dir, events, resume=resume, keep_lr_scale=keep_lr_scale, make_probe=generation_probe)
    trainer.setup()
    if before_fit is not None:
        before_fit(trainer)
    status = trainer.fit()
    events.close()
    return trainer, status


def set_args(overrides: list[str]) -> list[str]:
    """`--set a=1 --set b=2`: config overrides as `nlirg train` takes them."""
    return [x for o in overrides for x in ("--set", o)]


def cli_run(root: Path, overrides: list[str], max_steps: int) -> Path:
    """A foreground `nlirg train` in `root` with `output.name` among the overrides; returns its run directory."""
    res = nlirg_cli("train", *set_args(overrides), "--max-steps", str(max_steps), cwd=root)
    assert res.returncode == 0, res.stderr
    name = next(o.split("=", 1)[1] for o in overrides if o.startswith("output.name="))
    return next((root / "runs").glob(f"{name}-*"))


def step_losses(run_dir: Path) -> list[float]:
    return [e["loss"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "step"]


def nlirg_cli(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `nlirg` console script (from this venv)."""
    exe = Path(sys.executable).with_name("nlirg")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def write_odd_experiments(root: Path) -> None:
    """Under `root`: a run, an experiment.json that is not UTF-8, one with no run list, and a hand-trimmed one that
    still has its runs but lost `arms`, `repeats` and `model`."""
    run = root / "solo-20260101-000000"
    run.mkdir(parents=True)
    (run / "trainer.json").write_text(json.dumps({"name": "solo", "status": "completed", "pid": None}))
    for name, content in (("binary", b"\x89PNG\r\n\x1a\n"), ("no-runs", b'{"arms": ["plain", "nlirg"]}'),
                          ("trimmed", json.dumps({"runs": [{"name": "plain-r0", "arm": "plain", "repeat": 0,
                                                            "seed": 42}]}).encode())):
        (root / name).mkdir()
        (root / name / "experiment.json").write_bytes(content)
