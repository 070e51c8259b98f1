"""Is a run's trainer (or a DeepSpeed rank) still there? One answer for the CLI, the TUI and the ranks (psutil).

A pid counts as alive only while it runs, is not a zombie (exited, waiting for its parent to notice), and
belongs to this user: a trainer always runs as the user who started it, so a pid now held by another user's
process is a reused pid, and the run is gone. A pid reused by one of this user's own processes (a `sleep`) is
told by its start time: trainer.json records the trainer's (`pid_started`), and a process that started at
another time is not the trainer (`trainer_alive`).
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


START_SLACK_S = 1.0
"""How far two readings of one process's start time may differ (the kernel's boot time is whole seconds)."""


def process_started(pid: int) -> float | None:
    """When `pid` started (seconds since the epoch), or None when it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def trainer_alive(info: dict[str, Any]) -> bool:
    """Whether trainer.json's process (`info`: its fields) is alive and is still the process it names: its start
    time matches `pid_started`, or (a trainer.json without it) is not later than the trainer's `started`."""
    pid = info.get("pid")
    if not pid_alive(pid):
        return False
    created = process_started(pid)
    if created is None:
        return False
    recorded, started = info.get("pid_started"), info.get("started")
    if _number(recorded):
        return abs(created - recorded) <= START_SLACK_S
    if _number(started):
        return created <= started + START_SLACK_S
    return True


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def descends_from(pid: int, ancestor: int, depth: int = 4) -> bool:
    """Whether `pid` is a child, grandchild... (up to `depth` generations) of `ancestor`."""
    try:
        parents = psutil.Process(pid).parents()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return ancestor in [p.pid for p in parents[:depth]]
