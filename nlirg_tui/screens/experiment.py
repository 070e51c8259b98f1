"""The Experiment screen: an `nlirg ab` folder at a glance. The arms' loss curves overlaid (mean over repeats with
a ±1 std band), the metric table (mean ± std per arm, the difference to the reference arm with its 95% interval),
and the runs with the one training now; Enter opens a run's live view, `l` the one training now.

Everything is read from the experiment folder (experiment.json, each run's events.jsonl and eval.json) by a
thread every POLL_S while the screen is on top; the screen itself does no file work.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Static

from nlirg_tui.experiment_curves import RunCurve, arm_band
from nlirg_tui.screens.polling import PollingScreen
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.widgets.plot import Line, PlotSpec, SeriesPlot
from nlirg_tui.widgets.table_fill import Row, fill_table
from trainer_core.evaluate.experiment import ExperimentInfo, RunSlot, current_report, experiment_info
from trainer_core.evaluate.report import METRICS, fmt, mean_std
from trainer_core.live.rundir import EVENTS_FILE

RUN_COLUMNS = (" ", "run", "seed", "status", "step", "loss")
ARM_COLORS = {"plain": "red", "nlirg": "cyan", "dft": "green", "nlirg-raw": "magenta"}
MORE_COLORS = ("yellow", "blue", "orange", "white")
"""For arms on another base (`nlirg@nf4`), in their order."""


@dataclass
class Snapshot:
    """What one refresh read from disk."""

    info: ExperimentInfo
    report: dict[str, Any]
    bands: dict[str, Any]


class ExperimentScreen(PollingScreen):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "back"),
        Binding("enter", "open_run", "open run"),
        Binding("l", "open_live", "live run"),
        Binding("r", "refresh", "refresh"),
    ]

    def __init__(self, exp_dir: Path) -> None:
        super().__init__()
        self.exp_dir = Path(exp_dir)
        self.curves: dict[str, RunCurve] = {}
        self.snapshot: Snapshot | None = None
        self.reading = threading.Lock()
        """One refresh at a time reads the curves (a cancelled thread worker runs on: two would add a step twice)."""

    def compose(self) -> ComposeResult:
        yield Static(f" Experiment {self.exp_dir.name}", id="experiment-title")
        with Horizontal(id="experiment-top"):
            yield SeriesPlot(id="experiment-plot")
            with Vertical(id="experiment-side"):
                yield Static(id="experiment-status")
                yield DataTable(id="experiment-runs", cursor_type="row", zebra_stripes=True)
        metrics: DataTable = DataTable(id="experiment-metrics", cursor_type="row", zebra_stripes=True)
        yield metrics
        yield Footer()

    @work(thread=True, exclusive=True, group="experiment")
    def action_refresh(self) -> None:
        with self.reading:
            info = experiment_info(self.exp_dir)
            report = current_report(self.exp_dir, info.spec)
            bands = {}
            for arm in info.spec["arms"]:
                curves = [self._curve(slot) for slot in info.runs if slot.arm == arm]
                bands[arm] = arm_band(curves)
        self.app.call_from_thread(self.show, Snapshot(info, report, bands))

    def _curve(self, slot: RunSlot) -> RunCurve:
        curve = self.curves.setdefault(slot.name, RunCurve(slot.run_dir / EVENTS_FILE))
        curve.update()
        return curve

    # ------------------------------------------------------------------ drawing
    def show(self, snap: Snapshot) -> None:
        """Draw what changed since the last refresh (nothing, most ticks of a finished experiment); the tables
        change cell by cell, so the user's cursor and scroll stay where they are."""
        if snap == self.snapshot:
            return
        self.snapshot = snap
        self.query_one("#experiment-status", Static).update(status_text(snap))
        self.query_one("#experiment-plot", SeriesPlot).show(loss_plot(snap))
        fill_table(self.query_one("#experiment-runs", DataTable), RUN_COLUMNS, run_rows(snap.info))
        fill_table(self.query_one("#experiment-metrics", DataTable), *metric_rows(snap.report))

    # ------------------------------------------------------------------ opening runs
    def selected_slot(self) -> RunSlot | None:
        if self.snapshot is None:
            return None
        row = self.query_one("#experiment-runs", DataTable).cursor_row
        runs = self.snapshot.info.runs
        return runs[row] if 0 <= row < len(runs) else None

    def action_open_run(self) -> None:
        self._open(self.selected_slot())

    @on(DataTable.RowSelected, "#experiment-runs")
    def _on_run_selected(self) -> None:
        self.action_open_run()  # Enter on the runs table (the table handles Enter itself)

    def action_open_live(self) -> None:
        live = self.snapshot.info.live_run if self.snapshot is not None else None
        if live is None:
            self.notify("no run of this experiment is training now", severity="warning")
            return
        self._open(live)

    def _open(self, slot: RunSlot | None) -> None:
        if slot is None or slot.info is None:
            self.notify("this run has not started yet", severity="warning")
            return
        self.app.push_screen(RunScreen(slot.run_dir, standalone=False))


def run_rows(info: ExperimentInfo) -> list[Row]:
    rows: list[Row] = []
    live = info.live_run
    for slot in info.runs:
        i = slot.info
        step = f"{i.step}/{i.total_steps}" if i is not None and i.step is not None else "-"
        loss = f"{i.loss:.4f}" if i is not None and isinstance(i.loss, (int, float)) else "-"
        status = "evaluated" if slot.evaluated else (i.status if i is not None else "pending")
        mark = "▶" if live is not None and slot.name == live.name else " "
        rows.append((slot.name, (mark, slot.name, str(slot.seed), status, step, loss)))
    return rows


def metric_rows(report: dict[str, Any]) -> tuple[list[str], list[Row]]:
    """The metric table's columns (one per arm, one difference per arm to the reference) and its rows: the
    metrics any arm or the base model has a value for."""
    ref, arms = report["reference_arm"], list(report["arms"])
    others = [a for a in arms if a != ref]
    columns = ["metric", "better", "base", *arms, *(f"{a} − {ref} (95% CI)" for a in others)]
    base = report["base"]["metrics"] or {}
    rows: list[Row] = []
    for metric in METRICS:
        cells = [report["arms"][a][metric.key] for a in arms]
        if all(c["mean"] is None for c in cells) and base.get(metric.key) is None:
            continue
        rows.append((metric.key, (metric.key, metric.better, fmt(base.get(metric.key)), *(mean_std(c) for c in cells),
                                  *(difference_cell(report["differences"][a][metric.key], metric.better)
                                    for a in others))))
    return columns, rows


def status_text(snap: Snapshot) -> Text:
    spec, info, report = snap.info.spec, snap.info, snap.report
    text = Text.assemble((f"{spec['model']}\n", "bold"), f"arms {', '.join(spec['arms'])} × {spec['repeats']} "
                         f"(seeds {spec['seeds'][0]}..{spec['seeds'][-1]})\n",
                         f"evaluated {report['evaluated']}/{report['planned']}  ")
    live = info.live_run
    if live is not None and live.info is not None:
        text.append(f"training now: {live.name} step {live.info.step}/{live.info.total_steps}  (l: open)", "green")
    else:
        text.append(info.status, "cyan" if info.status == "complete" else "yellow")
    return text


def loss_plot(snap: Snapshot) -> PlotSpec:
    lines = []
    others = [arm for arm in snap.bands if arm not in ARM_COLORS]
    for arm, band in snap.bands.items():
        color = ARM_COLORS.get(arm) or MORE_COLORS[others.index(arm) % len(MORE_COLORS)]
        lines.append(Line(f"{arm} (mean of {band.runs})", band.xs, band.mean, color))
        if band.runs > 1:
            lines += [Line("", band.xs, band.low, color, "dot"), Line("", band.xs, band.high, color, "dot")]
    return PlotSpec("Training loss by arm: mean over repeats, dots ±1 std", lines, xlabel="step")


def difference_cell(d: dict[str, Any] | None, better: str) -> Text:
    """The paired difference (Welch's without seed pairs) with its interval; green when the interval says the arm
    is better, red when worse."""
    if d is None:
        return Text("-")
    d = d.get("paired") or d
    text = f"{d['diff']:+.4f}"
    if d["low"] is not None:
        text += f" [{d['low']:+.4f}, {d['high']:+.4f}]"
    if not d["excludes_zero"]:
        return Text(text)
    improved = (d["diff"] < 0) == (better == "lower")
    return Text(text + " *", "green" if improved else "red")
