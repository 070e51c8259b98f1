"""Whether a run's trainer process is still alive, from the pid in its trainer.json (Linux and macOS)."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: object) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by the process that started it) counts as gone."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        # A trainer this process started (relaunch, new run) is our child: reap it once it exits.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process reuses the pid; it is not our trainer, but it exists
    stat = Path(f"/proc/{pid}/stat")
    try:
        # The state letter follows the parenthesised command name, which may itself hold spaces.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
