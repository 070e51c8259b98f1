"""Creating a run directory from a config and starting the trainer process (foreground or detached).

Torch-free: the CLI and the TUI call this without importing torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trainer_core.config import RunConfig, save_config
from trainer_core.rundir import CONFIG_FILE, LOG_FILE, new_run_dir, update_trainer_json


def prepare_run(cfg: RunConfig, default_name: str) -> Path:
    """Make `root/<name>-<stamp>/` and write the resolved config there."""
    name = cfg.output.name or default_name
    # Absolute data and model paths: a resumed or relaunched run may start from another folder.
    cfg.data.train = [_absolute(p) for p in cfg.data.train]
    cfg.data.eval = [_absolute(p) for p in cfg.data.eval]
    cfg.model.path = _absolute(cfg.model.path)
    run_dir = new_run_dir(cfg.output.root, name)
    save_config(cfg, run_dir / CONFIG_FILE)
    update_trainer_json(run_dir, name=name, status="created", run_dir=str(run_dir))
    return run_dir


def trainer_command(run_dir: Path, resume: Path | None = None, progress: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "trainer_core", "--run-dir", str(run_dir)]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    if progress:
        cmd.append("--progress")
    return cmd


def run_foreground(run_dir: Path, resume: Path | None = None) -> int:
    """Run the trainer attached to this terminal; Ctrl+C reaches it and it stops cleanly."""
    proc = subprocess.Popen(trainer_command(run_dir, resume, progress=True))
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # the trainer got the same SIGINT and is saving; wait for it


def start_detached(run_dir: Path, resume: Path | None = None) -> int:
    """Start the trainer in its own session (immune to SIGHUP and the terminal closing); return its pid."""
    log = open(run_dir / LOG_FILE, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        trainer_command(run_dir, resume), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, close_fds=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    update_trainer_json(run_dir, pid=proc.pid)
    return proc.pid


def _absolute(spec: str) -> str:
    p = Path(spec).expanduser()
    return str(p.resolve()) if not spec.startswith("builtin:") and p.exists() else spec
