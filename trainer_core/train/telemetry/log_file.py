"""trainer.log (and a DeepSpeed rank's own log): whole lines, and a full disk drops lines instead of printing
logging's "--- Logging error ---" tracebacks on the terminal at every line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from trainer_core.atomic import AppendFile


class LogFileHandler(logging.Handler):
    """Appends each record as one whole line; while the disk refuses, lines are counted and dropped (the terminal
    hears it once), and the first line written again says how many were lost."""

    def __init__(self, path: Path):
        super().__init__()
        self.file = AppendFile(path)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - a bad format string is logging's own error to report
            self.handleError(record)
            return
        if self.dropped:
            text = f"({self.dropped} log line(s) dropped: the disk was full)\n{text}"
        try:
            self.file.append(text.encode("utf-8", "replace"))
        except OSError as exc:
            if not self.dropped:
                print(f"warning: cannot write {self.file.path} ({exc.strerror or exc}); log lines are dropped "
                      "until there is disk space", file=sys.stderr, flush=True)
            self.dropped += 1
            return
        self.dropped = 0

    def close(self) -> None:
        self.file.close()
        super().close()
