"""Is a run's trainer (or a DeepSpeed rank) still there? One answer for the CLI, the TUI and the ranks (psutil).

A pid counts as alive only while it runs, is not a zombie (exited, waiting for its parent to notice), and
belongs to this user: a trainer always runs as the user who started it, so a pid now held by another user's
process is a reused pid, and the run is gone.
"""

from __future__ import annotations

import os
from typing import Any

import psutil


def pid_alive(pid: Any) -> bool:
    """True while `pid` is a live, non-zombie process of this user (None, bools and pids <= 0 are not)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.uids().real == os.getuid() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return False  # another user's process (where the OS hides its details): not our trainer


def descends_from(pid: int, ancestor: int, depth: int = 4) -> bool:
    """Whether `pid` is a child, grandchild... (up to `depth` generations) of `ancestor`."""
    try:
        parents = psutil.Process(pid).parents()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return ancestor in [p.pid for p in parents[:depth]]
