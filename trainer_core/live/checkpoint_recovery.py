"""Which checkpoint a resume continues from, after finishing or undoing what a killed save left behind.

A save builds `checkpoints/.tmp-step-N/`, writes the COMPLETE marker last, renames an old `step-N/` aside to
`.old-step-N/`, renames the temp folder into place and removes the aside (`trainer_core.atomic.publish_dir`).
A kill between any two of these leaves the newest whole copy under one of the three names; recovery puts it
back under `step-N/`, removes every partial folder, and the resume takes the newest complete checkpoint.
Torch-free: the CLI and the TUI call it before starting the trainer.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from trainer_core.live.rundir import CHECKPOINTS, COMPLETE_MARKER, checkpoint_dirs, is_complete
from trainer_core.live.runs import run_info

log = logging.getLogger("trainer_core")


def resume_point(run_dir: Path) -> Path | None:
    """The newest complete checkpoint, after `recover_checkpoints` (skipped while the run trains: its save in
    progress is not a leftover)."""
    if not run_info(run_dir).live:
        recover_checkpoints(run_dir)
    found = checkpoint_dirs(run_dir)
    return found[-1] if found else None


def recover_checkpoints(run_dir: Path) -> list[str]:
    """Finish or undo interrupted saves under `run_dir/checkpoints/`; returns one note per folder changed.

    Call it only while no trainer writes to the run: a save in progress looks just like an interrupted one.
    """
    base = Path(run_dir) / CHECKPOINTS
    if not base.is_dir():
        return []
    notes = []
    for prefix in (".tmp-", ".old-"):  # a whole new copy is tried before a whole old one of the same step
        for leftover in sorted(base.glob(f"{prefix}step-*")):
            notes.append(_settle(leftover, base / leftover.name[len(prefix):]))
    for partial in checkpoint_dirs(run_dir, complete=False):
        if not is_complete(partial):
            shutil.rmtree(partial, ignore_errors=True)
            notes.append(f"removed the incomplete checkpoint {partial.name}")
    for note in notes:
        log.warning("checkpoints: %s", note)
    return notes


def _settle(leftover: Path, final: Path) -> str:
    """Rename a whole leftover copy into `final` unless `final` is already whole; remove it otherwise."""
    if (leftover / COMPLETE_MARKER).is_file() and not (final / COMPLETE_MARKER).is_file():
        shutil.rmtree(final, ignore_errors=True)
        leftover.rename(final)
        return f"recovered {final.name} from {leftover.name} (a save was interrupted)"
    shutil.rmtree(leftover, ignore_errors=True)
    return f"removed {leftover.name} (left by an interrupted save)"
