"""Starting runs from the TUI: a config file, the demo, or a relaunch of an edited config (torch-free).

Each returns the new run directory with its trainer started detached (its own session), so closing the TUI
never stops it.
"""

from __future__ import annotations

from pathlib import Path

from nlirg_tui.config_check import check_config_text
from trainer_core.config import RunConfig, build_config
from trainer_core.live.checkpoint_recovery import resume_point
from trainer_core.live.launch import prepare_run, start_detached
from trainer_core.live.rundir import TRAINER_FILE, checkpoint_dirs, read_json
from trainer_core.train.model_source import ModelLoadError, check_model_source


class LaunchError(ValueError):
    """A config that cannot start a run; the message lists the problems by key path."""


def launch_config_file(path: Path, root: Path) -> Path:
    """A run of the config file under the workbench's `root` (what `nlirg --root DIR` shows). The ConfigError of a
    bad file propagates: its message already names the file and the keys."""
    cfg = build_config(path)
    cfg.output.root = str(root)
    return _start(cfg, path.stem)


def launch_demo(overrides: list[str], root: Path) -> Path:
    cfg = build_config(None, overrides, source="demo config")
    cfg.output.root = str(root)
    return _start(cfg, "demo")


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1] if found else None


def relaunch(run_dir: Path, config_text: str, resume_weights: bool) -> Path:
    """A new run from the edited config, optionally continuing from the old run's newest checkpoint."""
    cfg, problems = check_config_text(config_text)
    if cfg is None:
        raise LaunchError("; ".join(problems))
    name = (read_json(run_dir / TRAINER_FILE) or {}).get("name") or run_dir.name
    resume = resume_point(run_dir) if resume_weights else None
    if resume_weights and resume is None:
        raise LaunchError(f"{run_dir.name} has no checkpoint to resume from; relaunch with fresh weights")
    return _start(cfg, name, resume)


def _start(cfg: RunConfig, name: str, resume: Path | None = None) -> Path:
    try:
        check_model_source(cfg.model.path)  # a missing config.json or an unreachable hub id: no run directory
    except ModelLoadError as exc:
        raise LaunchError(str(exc)) from None
    run_dir = prepare_run(cfg, name)
    start_detached(run_dir, resume)
    return run_dir
