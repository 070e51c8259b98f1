"""Compare runs: their loss curves overlaid, read from each run's events.jsonl in a thread."""

from __future__ import annotations

import json
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from nlirg_tui.series import BoundedSeries
from nlirg_tui.widgets.plot import Line, PlotSpec, SeriesPlot
from trainer_core.live.rundir import EVENTS_FILE

COLORS = ("red", "cyan", "green", "orange", "magenta")


def loss_series(run_dir: Path) -> BoundedSeries:
    """A run's loss curve in bounded memory, streamed line by line (a long run's file never sits in memory)."""
    series = BoundedSeries()
    try:
        with (run_dir / EVENTS_FILE).open(encoding="utf-8") as fh:
            for line in fh:
                if '"step"' not in line:
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("type") == "step":
                    series.append(event.get("step", 0), event.get("loss"))
    except OSError:
        pass
    return series


class CompareScreen(Screen):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "back")]

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = run_dirs

    def compose(self) -> ComposeResult:
        yield Static("Compare: " + "  vs  ".join(d.name for d in self.run_dirs), id="compare-title")
        yield SeriesPlot(id="compare-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="compare")
    def load(self) -> None:
        lines = []
        for i, run_dir in enumerate(self.run_dirs):
            xs, ys = loss_series(run_dir).points()
            lines.append(Line(run_dir.name, xs, ys, COLORS[i % len(COLORS)]))
        self.app.call_from_thread(self.query_one(SeriesPlot).show, PlotSpec("Loss", lines))
