"""Finding runs on disk and telling live ones from dead ones.

Torch-free: `nlirg runs/attach/stop/...` import this without importing torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_core.live.processes import trainer_alive
from trainer_core.live.protocol import LIVE_STATUSES
from trainer_core.live.rundir import (
    CONFIG_FILE,
    EVENTS_FILE,
    SUMMARY_FILE,
    TRAINER_FILE,
    checkpoint_dirs,
    read_json,
)

TAIL_BYTES = 256 * 1024


class RunNotFound(ValueError):
    """RUN names no run, or several; the message says which and what to type instead."""


@dataclass
class RunInfo:
    run_dir: Path
    name: str
    status: str
    """trainer.json's status, or `dead` when it claims to run but its pid is gone."""
    step: int | None
    total_steps: int | None
    loss: float | None
    started: float | None
    host: str | None
    pid: int | None
    socket: str | None
    error: str | None = None
    """Why a failed run failed (the first line of its error), or what became of a dead one."""
    tokens_per_s: float | None = None
    """The newest step event's input tokens per second (None before the first step)."""

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


def run_info(run_dir: Path) -> RunInfo:
    info = read_json(run_dir / TRAINER_FILE) or {}
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    status = info.get("status", "created")
    pid = info.get("pid")
    if status in LIVE_STATUSES and not trainer_alive(info):
        status = "dead"
    step, total, loss = summary.get("steps"), summary.get("total_steps"), summary.get("final_loss")
    last = last_step_event(run_dir / EVENTS_FILE) or {}
    if last and (step is None or last.get("step", -1) >= step):
        step, total, loss = last.get("step"), last.get("total_steps", total), last.get("loss")
    tps = last.get("tokens_per_s")
    return RunInfo(run_dir=run_dir, name=info.get("name") or run_dir.name, status=status, step=step,
                   total_steps=total, loss=loss, started=info.get("started"), host=info.get("host"),
                   pid=pid if isinstance(pid, int) else None, socket=info.get("socket"),
                   error=_why(status, info, summary, run_dir),
                   tokens_per_s=float(tps) if isinstance(tps, (int, float)) else None)


def _why(status: str, info: dict[str, Any], summary: dict[str, Any], run_dir: Path) -> str | None:
    """The first line of a failed run's error; for a dead run, what happened and how to go on."""
    if status == "failed":
        text = str(info.get("error") or summary.get("reason") or "no error recorded; see trainer.log")
        return text.strip().splitlines()[0] if text.strip() else None
    if status == "dead":
        gone = f"the trainer (pid {info.get('pid')}) ended without a word (killed?)"
        if not checkpoint_dirs(run_dir):
            return f"{gone} before its first checkpoint; start it again"
        return f"{gone}; continue it with: nlirg train --resume {run_dir}"
    return None


def last_step_event(path: Path) -> dict[str, Any] | None:
    """The newest `step` event in the tail of an events.jsonl (reads at most TAIL_BYTES)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read()
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        if b'"type": "step"' not in line[:60] and b'"type":"step"' not in line[:60]:
            continue
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def find_runs(root: str | Path) -> list[RunInfo]:
    """Runs under `root`, live ones first, then newest first."""
    base = Path(root).expanduser()
    if not base.is_dir():
        return []
    runs = [run_info(p.resolve()) for p in base.iterdir() if _is_run_dir(p)]
    return sorted(runs, key=lambda r: (not r.live, -(r.started or 0.0), r.run_dir.name))


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / TRAINER_FILE).is_file() or (path / CONFIG_FILE).is_file())


def resolve_run(spec: str, root: str | Path = "runs") -> Path:
    """RUN as a run directory, a run folder name, or a unique prefix of one under `root`.

    Several matches are fine when exactly one of them is live (`nlirg stop demo` means the running demo).
    """
    direct = Path(spec).expanduser()
    if _is_run_dir(direct):
        return direct.resolve()
    base = Path(root).expanduser()
    if not base.is_dir():
        raise RunNotFound(f"{spec}: no such run directory, and no runs folder {base} (use --root DIR)")
    names = [p for p in base.iterdir() if _is_run_dir(p)]
    exact = [p for p in names if p.name == spec]
    matches = exact or [p for p in names if p.name.startswith(spec)]
    if not matches:
        raise RunNotFound(f"{spec}: no run of that name under {base}; `nlirg runs --root {base}` lists them")
    if len(matches) > 1:
        live = [p for p in matches if run_info(p).live]
        if len(live) == 1:
            return live[0].resolve()
        shown = ", ".join(sorted(p.name for p in matches)[:5])
        raise RunNotFound(f"{spec}: matches {len(matches)} runs ({shown}); give more of the name")
    return matches[0].resolve()
