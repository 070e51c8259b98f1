"""The foreground progress display of `nlirg train`: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


def _fmt(x: Any, spec: str = ".4f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "-"


class Progress:
    """Shows steps, loss, weighted loss, tokens/s and ETA; silent when disabled (detached runs)."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._bar = None
        self._task = None
        self._phase_tasks: dict[str, Any] = {}
        self._phase: str | None = None
        self._phase_shown = 0.0
        self._t0 = time.time()
        if enabled and self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=Console(file=self.stream), refresh_per_second=4,
            )
            self._bar.start()

    def update(self, step: int, total: int, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        info = (f"loss {_fmt(event.get('loss'))}  wloss {_fmt(event.get('weighted_loss'))}  "
                f"{_fmt(event.get('tokens_per_s'), '.0f')} tok/s  zones {event.get('zone_counts')}  "
                f"samples {event.get('samples_done', '-')}")
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task("train", total=total, info=info)
            self._bar.update(self._task, completed=step, total=total, info=info)
            return
        elapsed = time.time() - self._t0
        eta = elapsed / step * (total - step) if step else 0.0
        print(f"step {step}/{total}  {info}  eta {eta:.0f}s", file=self.stream, flush=True)

    def phase(self, name: str, done: int, total: int, rate: float) -> None:
        """Data preparation's progress (`tokenizing` 40,000/100,000, `rate` items per second)."""
        now = time.time()
        if self._phase != name:
            self._phase, self._phase_shown = name, 0.0
        if not self.enabled:
            return
        if self._bar is not None:
            task = self._phase_tasks.get(name)
            if task is None:
                task = self._phase_tasks[name] = self._bar.add_task(name, total=total, info="")
            self._bar.update(task, completed=done, total=total, info=f"{rate:,.0f}/s")
        elif done >= total or now - self._phase_shown >= 2.0:  # plain lines: every 2 s and at the end
            self._phase_shown = now
            print(f"{name} {done:,}/{total:,}  {rate:,.0f}/s", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, file=self.stream, flush=True)

    def close(self, status: str, summary: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.stop()
        print(f"{status}: {summary['steps']} steps, final loss {_fmt(summary.get('final_loss'))}, "
              f"{_fmt(summary.get('tokens_per_s'), '.0f')} tokens/s", file=self.stream, flush=True)
