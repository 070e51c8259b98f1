"""One evaluator per eval.json: the evaluator process holds `.NAME.lock` beside its output for its whole life.

An `nlirg ab` killed mid-evaluation leaves its evaluator running (its own session); a rerun of the experiment
finds the lock held, waits for that evaluator instead of starting a second one on the same run, and reuses what
it wrote. Torch-free."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from trainer_core.live.run_lock import LockHeld, hold, holder

POLL_S = 0.5


class EvalBusy(RuntimeError):
    """Another evaluator is writing this output; the message names its pid."""


def eval_lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def hold_eval(out: Path) -> IO[str] | None:
    """Take `out`'s evaluator lock for this process (None when its folder does not exist yet); EvalBusy when a
    live evaluator holds it."""
    if not out.parent.is_dir():
        return None
    try:
        return hold(eval_lock_path(out))
    except LockHeld as exc:
        raise EvalBusy(f"another evaluator (pid {exc.pid}) is writing {out} right now; wait for it, or stop it "
                       f"(kill {exc.pid})") from None


def running_evaluator(out: Path) -> int | None:
    """The pid of the evaluator writing `out` (0 when it wrote none yet), or None when there is none."""
    return holder(eval_lock_path(out))


def wait_for_evaluator(out: Path, stopping: Callable[[], bool]) -> bool:
    """Wait while an evaluator holds `out`'s lock; False when `stopping()` turned true first."""
    while running_evaluator(out) is not None:
        if stopping():
            return False
        time.sleep(POLL_S)
    return True
