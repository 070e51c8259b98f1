"""Scoring progress on stderr: a rich bar with tokens/s on a terminal, a plain line every few seconds otherwise."""

from __future__ import annotations

import sys
import time
from typing import IO

PLAIN_EVERY_S = 5.0


class ScoreProgress:
    def __init__(self, total_records: int, total_tokens: int, stream: IO[str] | None = None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.total_records = total_records
        self.total_tokens = total_tokens
        self.records = 0
        self.tokens = 0
        self.enabled = enabled
        self._t0 = time.monotonic()
        self._last_plain = self._t0
        self._bar = None
        if enabled and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]score"), BarColumn(), MofNCompleteColumn(), TextColumn("eta"),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=Console(file=self.stream), refresh_per_second=4)
            self._task = self._bar.add_task("score", total=total_records, info="")
            self._bar.start()

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(time.monotonic() - self._t0, 1e-9)

    def advance(self, records: int, tokens: int) -> None:
        self.records += records
        self.tokens += tokens
        if not self.enabled:
            return
        info = f"{self.tokens_per_s:,.0f} tok/s"
        if self._bar is not None:
            self._bar.update(self._task, completed=self.records, info=info)
            return
        now = time.monotonic()
        if now - self._last_plain >= PLAIN_EVERY_S or self.records == self.total_records:
            self._last_plain = now
            print(f"scored {self.records}/{self.total_records} records, {info}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
