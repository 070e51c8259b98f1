"""Terminal output is best-effort: a run (and its launcher) never dies because stdout or stderr went away.

`nlirg train ... | head -1` closes the pipe after one line, a closed SSH terminal turns writes into EIO: the
progress display, the echoed warnings and the final line are a courtesy, the run directory is the record.
Once a stream fails, its file descriptor is pointed at /dev/null (so libraries and child processes writing to
it cannot fail either), the loss is noted once in trainer.log, and training goes on.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from typing import TextIO

log = logging.getLogger("trainer_core")


class BestEffortStream(io.TextIOBase):
    """Wraps sys.stdout or sys.stderr; after the first failed write or flush, every write is dropped."""

    def __init__(self, stream: TextIO, name: str) -> None:
        super().__init__()
        self._stream = stream
        self._name = name
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self._stream.write(text)
            except OSError as exc:
                self._lose(exc)
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except OSError as exc:
                self._lose(exc)

    def isatty(self) -> bool:
        return not self.lost and self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def _lose(self, exc: OSError) -> None:
        self.lost = True
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())  # C-level writers and children now write nowhere, harmlessly
            os.close(null)
        except (OSError, ValueError):
            pass  # no descriptor to redirect (a test's StringIO); the wrapper already drops everything
        log.warning("%s closed (%s); training goes on, its output is in trainer.log and events.jsonl", self._name,
                    exc.strerror or exc, extra={"quiet": True})


def make_output_best_effort() -> None:
    """Wrap this process's stdout and stderr (call before logging and the progress display take them)."""
    if not isinstance(sys.stdout, BestEffortStream):
        sys.stdout = BestEffortStream(sys.stdout, "stdout")
    if not isinstance(sys.stderr, BestEffortStream):
        sys.stderr = BestEffortStream(sys.stderr, "stderr")
