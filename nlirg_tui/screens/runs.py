"""The Runs screen (home): live and past runs with status, step, loss and tokens/s, and what to do with them;
experiments (`nlirg ab`) with their runs grouped under them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from nlirg_tui.launching import LaunchError, launch_config_file, launch_demo
from nlirg_tui.live_commands import LiveCommandError, send_command
from nlirg_tui.screens.compare import CompareScreen
from nlirg_tui.screens.dialogs import ValueDialog, ask, confirm_dialog
from nlirg_tui.screens.experiment import ExperimentScreen
from nlirg_tui.screens.polling import PollingScreen
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.widgets.table_fill import Row, fill_table
from trainer_core.config import ConfigError
from trainer_core.evaluate.experiment import ExperimentInfo, find_experiments
from trainer_core.live.runs import RunInfo, find_runs

RUN_COLUMNS = (" ", "run", "status", "step", "loss", "tok/s")


@dataclass
class RunsScan:
    """What one refresh read from disk (off the UI thread)."""

    runs: list[RunInfo]
    experiments: list[ExperimentInfo]
    unreadable: list[str]
    """One line per experiment folder that could not be read."""


def scan_runs(root: Path) -> RunsScan:
    runs = find_runs(root)
    experiments, unreadable = find_experiments(root)
    return RunsScan(runs, experiments, unreadable)


class RunsScreen(PollingScreen):
    BINDINGS = [
        Binding("enter", "open", "open", show=False),
        Binding("a", "open", "attach"),
        Binding("space", "mark", "mark"),
        Binding("c", "compare", "compare"),
        Binding("x", "stop", "stop"),
        Binding("d", "delete", "delete"),
        Binding("n", "new_run", "new run"),
        Binding("m", "demo", "demo"),
        Binding("r", "refresh", "refresh", show=False),
        Binding("q", "app.quit", "quit"),
    ]

    def __init__(self, root: Path, demo_overrides: list[str]) -> None:
        super().__init__()
        self.root = Path(root)
        self.demo_overrides = demo_overrides
        self.runs: list[RunInfo] = []
        self.rows: list[RunInfo | ExperimentInfo | None] = []
        """What each table row shows: a run, an experiment (its runs follow it), or a run not started yet."""
        self.marked: set[Path] = set()
        self.scan = RunsScan([], [], [])
        """What the last refresh read."""

    def compose(self) -> ComposeResult:
        yield Static(f" Runs under {self.root}", id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-empty")
        yield Static(id="runs-unreadable", markup=False)
        yield Footer(compact=True, show_command_palette=False)  # 80 columns hold its keys, not ^p as well (it works)

    @work(thread=True, exclusive=True, group="runs-refresh")
    def action_refresh(self) -> None:
        scan = scan_runs(self.root)
        self.app.call_from_thread(self.show, scan)

    def show(self, scan: RunsScan) -> None:
        self.scan, self.runs = scan, scan.runs
        rows: list[Row] = []
        self.rows = []
        for run in scan.runs:
            rows.append(self._run_row(run, run.run_dir.name))
            self.rows.append(run)
        for exp in scan.experiments:  # an experiment's runs live in its folder, listed under it
            rows.append((str(exp.exp_dir), (" ", f"▸ {exp.name}", f"experiment {exp.status}",
                                            f"{exp.done}/{len(exp.runs)} eval", "-", "-")))
            self.rows.append(exp)
            for slot in exp.runs:
                if slot.info is None:
                    rows.append((str(slot.run_dir), (" ", f"  └ {slot.name}", "pending", "-", "-", "-")))
                else:
                    rows.append(self._run_row(slot.info, f"  └ {slot.name}"))
                self.rows.append(slot.info)
        fill_table(self.query_one(DataTable), RUN_COLUMNS, rows)
        empty = self.query_one("#runs-empty", Static)
        empty.display = not self.rows
        empty.update(f"No runs under {self.root}.  n: new run from a config file   m: start the demo")
        problems = self.query_one("#runs-unreadable", Static)
        problems.display = bool(scan.unreadable)
        problems.update("\n".join(scan.unreadable))

    def _run_row(self, run: RunInfo, label: str) -> Row:
        step = f"{run.step}/{run.total_steps}" if run.step is not None else "-"
        loss = f"{run.loss:.4f}" if isinstance(run.loss, (int, float)) else "-"
        tps = run.tokens_per_s
        return (str(run.run_dir), ("●" if run.run_dir in self.marked else " ", label, run.status, step, loss,
                                   f"{tps:,.0f}" if tps is not None else "-"))

    def current_entry(self) -> RunInfo | ExperimentInfo | None:
        row = self.query_one(DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def current(self) -> RunInfo | None:
        entry = self.current_entry()
        return entry if isinstance(entry, RunInfo) else None

    @on(DataTable.RowSelected)
    def _row_chosen(self) -> None:
        """Enter on a row: the table takes the key itself, so its RowSelected is where `open` happens."""
        self.action_open()

    def action_open(self) -> None:
        entry = self.current_entry()
        if isinstance(entry, ExperimentInfo):
            self.app.push_screen(ExperimentScreen(entry.exp_dir))
        elif entry is not None:
            self.app.push_screen(RunScreen(entry.run_dir, standalone=False))

    def action_mark(self) -> None:
        run = self.current()
        if run is not None:
            self.marked ^= {run.run_dir}
            self.show(self.scan)

    def action_compare(self) -> None:
        chosen = [r.run_dir for r in self.rows if isinstance(r, RunInfo) and r.run_dir in self.marked]
        if len(chosen) < 2:
            self.notify("mark two runs with space, then press c", severity="warning")
            return
        self.app.push_screen(CompareScreen(chosen))

    def action_stop(self) -> None:
        run = self.current()
        if run is None:
            return
        if not run.live:
            self.notify(f"{run.run_dir.name} is not running ({run.status})", severity="warning")
            return
        ask(self, confirm_dialog(f"Stop {run.run_dir.name}?", "Stop"),
            lambda answer: self._send_stop(run.run_dir) if answer == "yes" else None)

    @work(thread=True, group="runs-stop")
    def _send_stop(self, run_dir: Path) -> None:
        try:
            ack, _ = send_command(run_dir, "stop")
        except LiveCommandError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, f"stop acked at step {ack.get('applied_at_step')}")

    def action_delete(self) -> None:
        run = self.current()
        if run is None:
            return
        if run.live:
            self.notify(f"{run.run_dir.name} is running; stop it first (x)", severity="error")
            return
        ask(self, confirm_dialog(f"Delete {run.run_dir} and everything in it?", "Delete"),
            lambda answer: self._delete(run.run_dir) if answer == "yes" else None)

    def _delete(self, run_dir: Path) -> None:
        shutil.rmtree(run_dir)
        self.marked.discard(run_dir)
        self.action_refresh()

    def action_new_run(self) -> None:
        ask(self, ValueDialog("Config file to launch (YAML):", "", "runs/my.yaml"), self._launch)

    def _launch(self, path: str | None) -> None:
        if not path:
            return
        try:
            run_dir = launch_config_file(Path(path).expanduser(), self.root)
        except (ConfigError, LaunchError) as exc:  # LaunchError: model.path cannot load
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.app.push_screen(RunScreen(run_dir, standalone=False))

    def action_demo(self) -> None:
        question = (f"Start the demo under {self.root}? SmolLM2-135M + LoRA, 60 steps: about 15 minutes on a CPU, "
                    "a minute or two on a GPU.")
        ask(self, confirm_dialog(question, "Start"), self._start_demo)

    def _start_demo(self, answer: str | None) -> None:
        if answer != "yes":
            return
        try:
            run_dir = launch_demo(self.demo_overrides, self.root)
        except (ConfigError, LaunchError) as exc:  # LaunchError: model.path cannot load
            self.notify(str(exc), severity="error", timeout=10)
            return
        self.app.push_screen(RunScreen(run_dir, standalone=False))
