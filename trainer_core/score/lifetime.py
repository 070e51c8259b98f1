"""What a scoring process owes the files and processes around it: it dies with the `nlirg score` that started
it (a killed CLI leaves no worker that overwrites --out minutes later), it removes the temp files that a killed
scorer left beside --out, and its files are as private as a run folder's (0600; 0640 in a shared run folder)."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import stat
from pathlib import Path

from trainer_core.live.processes import pid_alive
from trainer_core.live.rundir import PRIVATE_MODE, SHARED_MODE

PARENT_ENV = "NLIRG_SCORE_PARENT"
"""Set by `nlirg score` to its pid: the scorer it starts ends when that process ends."""
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """When started by `nlirg score` (PARENT_ENV), be killed as soon as that process ends (Linux), and exit now
    if it has ended already."""
    expected = os.environ.get(PARENT_ENV, "")
    if not expected.isdigit() or int(expected) == os.getpid():
        return  # not started by a scorer, or this process set it itself (a second scoring run in one process)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the check below still catches a parent gone before we started
    if os.getppid() != int(expected):
        os._exit(1)


def clean_stale_temps(out: Path) -> list[Path]:
    """Remove the temp files (`.NAME.tmp-PID`) of the score file and its summary whose writer is gone."""
    removed = []
    pattern = re.compile(r"^\.(.+)\.tmp-(\d+)$")
    names = {out.name, f"{out.stem}.summary.json"}
    for path in out.parent.glob(".*.tmp-*") if out.parent.is_dir() else []:
        match = pattern.match(path.name)
        if match and match.group(1) in names and not pid_alive(int(match.group(2))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def private_outputs(out: Path) -> None:
    """This process's umask: files 0600, or 0640 when --out is in a shared run folder (0750)."""
    try:
        shared = stat.S_IMODE(os.stat(out.parent).st_mode) == SHARED_MODE
    except OSError:
        shared = False
    os.umask(~(SHARED_MODE if shared else PRIVATE_MODE) & 0o777)  # files without x: 0600 / 0640


def guard(out: Path) -> None:
    """All three, first thing in a scoring process; its --num-procs workers then die with it."""
    die_with_parent()
    os.environ[PARENT_ENV] = str(os.getpid())  # what the spawned workers' die_with_parent compares with
    private_outputs(out)
    clean_stale_temps(out)
