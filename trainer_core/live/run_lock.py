"""One trainer per run directory: rank 0 holds an exclusive `flock` on `trainer.lock` for its whole life.

The kernel drops the lock when the process ends, however it ends (kill -9 included), so a lock that is held
always means a live trainer, whatever trainer.json says and whatever became of its pid. A second trainer on the
same run (`nlirg train --resume` of a live run, a relaunch, a rerun of an experiment) is refused before it
writes anything, in one line naming the live one. Torch-free: the CLI and the TUI ask it before they start one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import IO

LOCK_FILE = "trainer.lock"
PROBE_RETRIES = 10


class RunBusy(RuntimeError):
    """A trainer already trains this run; the message names it and says how to stop or watch it."""


class LockHeld(RuntimeError):
    """Another live process holds the lock; `pid` is the one it wrote (None when it wrote none yet)."""

    def __init__(self, path: Path, pid: int | None):
        super().__init__(f"{path} is held by pid {pid}")
        self.path, self.pid = path, pid


def busy_message(run_dir: Path, pid: int | None) -> str:
    who = f"trainer pid {pid}" if pid else "another trainer"
    return (f"{run_dir.name} is being trained right now ({who}); stop it with `nlirg stop {run_dir}` or watch it "
            f"with `nlirg attach {run_dir}`, and resume it once it has stopped")


def hold_run(run_dir: Path) -> IO[str]:
    """Take the run's lock for this process (keep the returned file open); RunBusy when a trainer holds it."""
    try:
        return hold(Path(run_dir) / LOCK_FILE)
    except LockHeld as exc:
        raise RunBusy(busy_message(Path(run_dir), exc.pid)) from None


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the trainer holding the run's lock (0 when it wrote none yet), or None when nobody holds it."""
    return holder(Path(run_dir) / LOCK_FILE)


def hold(path: Path) -> IO[str]:
    """Take the lock at `path` for this process and write our pid in it (keep the returned file open: closing
    it, or the process ending however it ends, lets go); LockHeld when a live process holds it."""
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the process's life
    for attempt in range(PROBE_RETRIES + 1):
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt < PROBE_RETRIES:
                time.sleep(0.1)  # a `lock_holder` probe holds it for a moment; a trainer holds it for good
                continue
            pid = _pid_in(fh)
            fh.close()
            raise LockHeld(path, pid) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def holder(path: Path) -> int | None:
    """The pid of the process holding the lock at `path` (0 when it wrote none yet), or None when nobody does."""
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(fh) or 0
        with contextlib.suppress(OSError):
            fcntl.flock(fh, fcntl.LOCK_UN)
        return None


def check_not_busy(run_dir: Path) -> None:
    """RunBusy when a trainer holds the run's lock."""
    pid = lock_holder(run_dir)
    if pid is not None:
        raise RunBusy(busy_message(Path(run_dir), pid))


def _pid_in(fh: IO[str]) -> int | None:
    try:
        fh.seek(0)
        text = fh.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
