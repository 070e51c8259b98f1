"""TensorBoard scalars (rank 0's `tb/`) that a full disk cannot kill.

TensorBoard's writer writes from a thread of its own and raises that thread's OSError (ENOSPC) at the next
`add_scalar`, `flush` or `close`; by then the thread is gone, so the first such error ends TensorBoard logging
for the run with one error line, and training goes on (every value is also in events.jsonl).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path


class TensorBoard:
    """Scalars for TensorBoard; `report` hears the one error line when the disk stops it."""

    def __init__(self, path: Path, report: Callable[[str], None]):
        self.path = path
        self.report = report
        self.writer = None
        try:
            self.writer = _summary_writer(path)
        except OSError as exc:  # its first record is written at once
            self._stopped(exc, 0)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One point (a non-finite value is skipped: TensorBoard cannot draw it)."""
        if isinstance(value, (int, float)) and math.isfinite(value):
            self._call("add_scalar", tag, value, step, where=step)

    def flush(self, step: int) -> None:
        """Put what is queued on disk (at every checkpoint: tb/ is as current as the checkpoint)."""
        self._call("flush", where=step)

    def close(self, step: int) -> None:
        self._call("close", where=step)
        self.writer = None

    def _call(self, method: str, *args, where: int) -> None:
        if self.writer is None:
            return
        try:
            getattr(self.writer, method)(*args)
        except OSError as exc:
            self._stopped(exc, where)

    def _stopped(self, exc: OSError, step: int) -> None:
        self.writer = None
        self.report(f"TensorBoard logging stopped at step {step} ({exc.strerror or exc}): free disk space under "
                    f"{self.path.parent}; every value is still in events.jsonl")


def _summary_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    _quiet_writer_thread_errors()
    return SummaryWriter(str(path))


def _quiet_writer_thread_errors() -> None:
    """TensorBoard's writer thread keeps its OSError for the next call and also re-raises it, which Python
    prints as a traceback on the terminal; `TensorBoard` reports it as one line, so the thread's copy is
    dropped (every other thread's exception is printed as before)."""
    try:
        from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
    except ImportError:  # a private class: another tensorboard version may not have it; its traceback stays
        return

    previous = threading.excepthook
    if getattr(previous, "quiets_tensorboard", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.thread, _AsyncWriterThread) and issubclass(args.exc_type, OSError):
            return
        previous(args)

    hook.quiets_tensorboard = True  # type: ignore[attr-defined]
    threading.excepthook = hook
