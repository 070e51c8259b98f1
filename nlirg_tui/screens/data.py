"""The Data screen: review a score file or a run's flagged samples worst first, mark records drop / keep / edit
(into an overlay, never the data), write a cleaned copy of the data (`w`) and relaunch on it (`r`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from nlirg_tui.cleaning import CleanError, CleanResult, write_cleaned
from nlirg_tui.launching import LaunchError, config_on_cleaned_data, launch_config_text, relaunch
from nlirg_tui.live_commands import LiveCommandError, send_command
from nlirg_tui.overlay import Decision, Overlay, describe, overlay_path
from nlirg_tui.raw_records import read_raw
from nlirg_tui.review_rows import ReviewRow, load_review, split_source
from nlirg_tui.screens.dialogs import ask
from nlirg_tui.screens.record_editor import Edited, RecordEditor
from nlirg_tui.screens.relaunch_dialog import Relaunch
from nlirg_tui.screens.relaunching import (
    RelaunchProgress,
    ask_relaunch,
    fail_relaunch,
    launch_and_open,
    show_progress,
    start_new_run,
    wait_for_exit,
)
from nlirg_tui.widgets.inspector import FlaggedTable
from nlirg_tui.widgets.record_view import RecordView, token_detail
from trainer_core.config import ConfigError, RunConfig, build_config, config_from_dict
from trainer_core.data.exclude import read_exclude
from trainer_core.live.rundir import CONFIG_FILE
from trainer_core.live.runs import run_info

MARKS = {"drop": "✗", "keep": "✓", "edit": "✎"}
LOUD = Binding.Group("loud", compact=True)
"""`[` and `]` share one footer entry."""
RelaunchHook = Callable[[str], None]


class DataScreen(Screen):
    BINDINGS = [
        Binding("d", "decide('drop')", "drop", tooltip="drop this record from the cleaned copy"),
        Binding("k", "decide('keep')", "keep", tooltip="keep this record as it is"),
        Binding("e", "edit", "edit", tooltip="edit the record's prompt and answer (into the overlay)"),
        Binding("u", "decide('')", "undo", tooltip="clear this record's mark"),
        Binding("w", "write", "write", tooltip="write NAME.clean.EXT and NAME.changes.jsonl"),
        Binding("r", "relaunch", "relaunch", tooltip="write, then relaunch the run on the cleaned data"),
        Binding("left", "move_token(-1)", "token", show=False, tooltip="previous answer token"),
        Binding("right", "move_token(1)", "token", show=False, tooltip="next answer token"),
        Binding("[", "jump_loud(-1)", "loud", tooltip="previous zeroed or label-error token", group=LOUD),
        Binding("]", "jump_loud(1)", "loud", tooltip="next zeroed or label-error token", group=LOUD),
        Binding("q,escape", "close", "close"),
    ]

    def __init__(self, review_file: Path, run_dir: Path | None = None, select: str | None = None,
                 on_relaunch: RelaunchHook | None = None, standalone: bool = False) -> None:
        super().__init__()
        self.review = load_review(review_file)  # ReviewFileError (one line) for a file it cannot read
        self.run_dir = run_dir
        """The run whose config `r` relaunches; None: a new run from the score file's model and data."""
        self.select = select
        self.on_relaunch = on_relaunch
        """Set when a Run screen opened this one: `r` hands it the config and it runs its own relaunch."""
        self.standalone = standalone
        self.overlay = Overlay(overlay_path(self.review.path))
        self.rows: list[ReviewRow] = self.review.rows
        self.written: list[CleanResult] = []

    def compose(self) -> ComposeResult:
        yield Static(id="data-header")
        table = FlaggedTable(id="data-table", cursor_type="row", zebra_stripes=True)  # ←/→ move over tokens
        table.add_columns(" ", "quality", "score", "flags", "source")
        yield table
        yield Static("", id="data-detail")
        yield RecordView(id="record-view")
        yield Footer(compact=True)  # 80 columns hold every key and ^p

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for row in self.rows:
            table.add_row(self._mark(row), f"{row.quality:.3f}" if row.quality is not None else "-",
                          f"{row.score:.3f}" if row.score is not None else "-", ",".join(row.flags) or "-",
                          f"{row.path.name}:{row.line}", key=row.source)
        sources = [r.source for r in self.rows]
        if self.rows:
            start = sources.index(self.select) if self.select in sources else 0
            table.move_cursor(row=start)
            self.query_one(RecordView).show_row(self.rows[start])
        self._draw_header()
        table.focus()

    # ------------------------------------------------------------------ drawing
    def _draw_header(self) -> None:
        kind = f"{self.review.summary.get('mode', 'score')} scores" if self.review.kind == "score" else "flagged"
        saved = "" if not self.written else "  written: " + ", ".join(r.clean.name for r in self.written)
        self.query_one("#data-header", Static).update(Text.assemble(
            (" Data ", "bold reverse"), f" {self.review.path.name} ({kind}, {len(self.rows)} records, worst first)  ",
            describe(self.overlay.decisions), (saved, "dim")))

    def _mark(self, row: ReviewRow) -> str:
        decision = self.overlay.get(row.source)
        return MARKS[decision.action] if decision else " "

    def current(self) -> ReviewRow | None:
        i = self.query_one(DataTable).cursor_row
        return self.rows[i] if 0 <= i < len(self.rows) else None

    @on(DataTable.RowHighlighted)
    def _on_row(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.rows):
            self.query_one(RecordView).show_row(self.rows[event.cursor_row])

    @on(RecordView.Moved)
    def _on_token(self, event: RecordView.Moved) -> None:
        self.query_one("#data-detail", Static).update(token_detail(event.row, event.index))

    def action_move_token(self, delta: int) -> None:
        self._say(self.query_one(RecordView).move(delta))

    def action_jump_loud(self, delta: int) -> None:
        self._say(self.query_one(RecordView).jump_loud(delta))

    def _say(self, problem: str | None) -> None:
        if problem:
            self.notify(problem, timeout=2)

    def _refresh_row(self, row: ReviewRow) -> None:
        table = self.query_one(DataTable)
        table.update_cell(row.source, table.ordered_columns[0].key, self._mark(row))
        self._draw_header()

    # ------------------------------------------------------------------ decisions
    def action_decide(self, action: str) -> None:
        row = self.current()
        if row is None:
            return
        self.overlay.set(row.source, Decision(action, row.reason) if action else None)
        self._refresh_row(row)

    def action_edit(self) -> None:
        row = self.current()
        if row is None:
            return
        try:
            original = read_raw(row.path).objects[row.line]
        except (OSError, KeyError, ValueError) as exc:
            self.notify(f"cannot open {row.source}: {exc}", severity="error")
            return
        before = self.overlay.get(row.source)
        start = before.record if before and before.action == "edit" and before.record else original
        editor = RecordEditor(start, f"{row.path.name}:{row.line}", before.note if before else "")
        ask(self, editor, lambda edited: self._save_edit(row, edited))

    def _save_edit(self, row: ReviewRow, edited: Edited | None) -> None:
        if edited is not None:
            self.overlay.set(row.source, Decision("edit", row.reason, edited.record, edited.note))
            self._refresh_row(row)

    def _excluded(self, changes: dict[str, Decision]) -> dict[str, Decision]:
        """Records of the files being cleaned that the run leaves out with data.exclude: dropped from the cleaned
        copy too, since its entries name lines of the original file and would not follow the records."""
        try:
            exclude = self._base_config().data.exclude if self.run_dir else None
        except ConfigError:  # e.g. the exclude file is gone: nothing to carry over; relaunch says what is wrong
            return {}
        if not exclude:
            return {}
        entries = read_exclude(exclude)
        out = {}
        for path in {split_source(source)[0] for source in changes}:
            for line, obj in read_raw(path).objects.items():
                if entries(str(path), line, obj):
                    out[f"{path}:{line}"] = Decision("drop", f"left out by data.exclude ({Path(exclude).name})")
        return out

    def action_write(self) -> list[CleanResult] | None:
        """Write NAME.clean.EXT and NAME.changes.jsonl for every file with a drop or an edit."""
        changes = self.overlay.changes()
        if not changes:
            self.notify("nothing to write: mark records drop (d) or edit (e) first", severity="warning")
            return None
        try:
            self.written = write_cleaned({**self._excluded(changes), **changes}, self.review.path.parent)
        except (CleanError, OSError, ValueError) as exc:
            self.notify(f"not written: {exc}", severity="error", timeout=10)
            return None
        dropped, edited = sum(r.dropped for r in self.written), sum(r.edited for r in self.written)
        self.notify(f"wrote {', '.join(str(r.clean) for r in self.written)}: {dropped} dropped, {edited} edited",
                    timeout=8)
        self._draw_header()
        return self.written

    # ------------------------------------------------------------------ relaunch
    def _base_config(self) -> RunConfig:
        if self.run_dir is not None:
            return build_config(self.run_dir / CONFIG_FILE)
        summary = self.review.summary
        if not summary.get("model") or not summary.get("data"):
            raise LaunchError(f"{self.review.path.name} names no run and has no summary with its model and data; "
                              "open it with `nlirg review FILE --run RUN`")
        return config_from_dict({"model": {"path": summary["model"]},
                                 "data": {"train": summary["data"], "format": summary.get("format", "auto"),
                                          "max_length": summary.get("max_length", 1024)}}, self.review.path.name)

    def action_relaunch(self) -> None:
        written = self.action_write()
        if not written:
            return
        try:
            text = config_on_cleaned_data(self._base_config(), {r.source.resolve(): r.clean for r in written})
        except (LaunchError, ValueError, OSError) as exc:
            self.notify(f"relaunch: {exc}", severity="error", timeout=10)
            return
        if self.on_relaunch is not None:  # the Run screen below runs the same relaunch as its Config pane
            hook = self.on_relaunch
            self.app.pop_screen()
            hook(text)
            return
        live = self.run_dir is not None and run_info(self.run_dir).live
        ask_relaunch(self, self.run_dir, live, "the cleaned data", text, lambda answer: self._relaunch(answer, live))

    def _relaunch(self, answer: Relaunch | None, live: bool) -> None:
        if answer is None:
            return
        progress = show_progress(self, self.run_dir, live)
        if live:
            self._stop_then_relaunch(answer, progress)
        elif self.run_dir is None:
            start_new_run(self, lambda: launch_config_text(answer.config_text, self.review.path.stem),
                          self.standalone, progress)
        else:
            run_dir = self.run_dir
            start_new_run(self, lambda: relaunch(run_dir, answer.config_text, answer.resume), self.standalone,
                          progress)

    @work(thread=True, group="data-relaunch")
    def _stop_then_relaunch(self, answer: Relaunch, progress: RelaunchProgress) -> None:
        """A live run: stop it (its stop writes the checkpoint to resume), wait for its end and its process to go,
        then start the new run; all off the UI thread, the progress screen saying which of these it waits for."""
        run_dir = self.run_dir
        assert run_dir is not None
        try:
            send_command(run_dir, "stop", None, True)
        except LiveCommandError as exc:
            self.app.call_from_thread(fail_relaunch, self, progress, f"relaunch cancelled: {exc}")
            return
        wait_for_exit(progress.pid)
        launch_and_open(self, lambda: relaunch(run_dir, answer.config_text, answer.resume), self.standalone,
                        progress)

    def action_close(self) -> None:
        if self.standalone:
            self.app.exit()
        else:
            self.app.pop_screen()
