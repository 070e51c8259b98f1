"""The Config pane: the run's YAML in an editor, validated as you type, with the planner's memory verdict
(`fits in 24.0 GB: 17.2 GB predicted`), a diff against the running config and a relaunch request (the Run
screen asks whether to resume weights and does the relaunch).

Showing the pane puts the cursor in the editor, so typing edits at once (digits and letters included); Escape
leaves the editor for the pane, where the Run screen's keys work again and Enter goes back in. The editor's
border says which of the two has the keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.syntax import Syntax
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Static, TextArea

from nlirg_tui.config_check import check_config_text, config_diff
from nlirg_tui.plan_verdict import memory_verdict
from trainer_core.live.rundir import CONFIG_FILE

VALIDATE_DELAY_S = 0.3


EDITING = "editing · Esc: leave for the pane keys"
NOT_EDITING = "Enter: edit"


class ConfigEditor(TextArea):
    """The YAML editor. Escape hands the keys back to the pane (TextArea's own Escape moves to the next widget,
    which would land right back in this one, the only one in the pane)."""

    BINDINGS = [Binding("escape", "leave", "leave editor", tooltip="leave the editor (the pane keys work again)")]

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "escape":  # TextArea takes Escape before any binding sees it
            event.stop()
            event.prevent_default()
            self.action_leave()
            return
        await super()._on_key(event)

    def action_leave(self) -> None:
        self.screen.set_focus(self.parent)

    def on_focus(self) -> None:
        self.border_subtitle = EDITING

    def on_blur(self) -> None:
        self.border_subtitle = NOT_EDITING


class ConfigPane(Vertical, can_focus=True):
    BINDINGS = [
        Binding("ctrl+t", "toggle_diff", "diff", tooltip="show or hide the diff against the running config"),
        Binding("ctrl+r", "relaunch", "relaunch", tooltip="stop this run and start one from the edited config"),
        Binding("enter", "edit", "edit", tooltip="back into the editor (Esc leaves it)"),
    ]

    show_diff: reactive[bool] = reactive(False, init=False)
    """Show the diff against the running config below the editor."""

    @dataclass
    class RelaunchRequested(Message):
        text: str

    def __init__(self, run_dir: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.run_dir = run_dir
        self.problems: list[str] = []
        self.verdict = ""
        """The planner's memory line for the edited config (docs/plan.md); empty while it has problems."""
        self.diff_text = ""
        """The last diff drawn (unified diff, running -> edited)."""
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        editor = ConfigEditor(self._running_text(), id="config-editor", show_line_numbers=True, tab_behavior="indent")
        if "yaml" in editor.available_languages:
            editor.language = "yaml"
        editor.border_title = CONFIG_FILE
        editor.border_subtitle = NOT_EDITING
        yield editor
        yield Static(id="config-problems")
        yield Static(id="config-plan")
        with VerticalScroll(id="config-diff-box"):
            yield Static(id="config-diff")

    def on_mount(self) -> None:
        self.validate_now()

    def _running_text(self) -> str:
        try:
            return (self.run_dir / CONFIG_FILE).read_text(encoding="utf-8")
        except OSError:
            return ""

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    @on(TextArea.Changed)
    def _on_changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_DELAY_S, self.validate_now)

    def validate_now(self) -> None:
        cfg, self.problems = check_config_text(self.text)
        self.verdict, fits = memory_verdict(cfg) if cfg is not None else ("", True)
        self.query_one("#config-plan", Static).update(Text(self.verdict, style="green" if fits else "bold yellow"))
        box = self.query_one("#config-problems", Static)
        if self.problems:
            box.update(Text("\n".join(f"✗ {p}" for p in self.problems), style="bold red"))
        else:
            box.update(Text("✓ valid config", style="green"))
        if self.show_diff:
            self._draw_diff()

    def watch_show_diff(self, show: bool) -> None:
        self.query_one("#config-diff-box").display = show
        if show:
            self._draw_diff()

    def _draw_diff(self) -> None:
        diff = self.diff_text = config_diff(self._running_text(), self.text)
        self.query_one("#config-diff", Static).update(
            Syntax(diff, "diff", theme="ansi_dark", background_color="default") if diff
            else Text("no changes from the running config", style="dim"))

    def action_toggle_diff(self) -> None:
        self.show_diff = not self.show_diff

    def action_relaunch(self) -> None:
        self.validate_now()
        if self.problems:
            self.notify(f"fix the config first: {self.problems[0]}", severity="error")
            return
        self.post_message(self.RelaunchRequested(self.text))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "edit" and self.query_one(ConfigEditor).has_focus)  # Enter is a newline there

    def action_edit(self) -> None:
        self.screen.set_focus(self.query_one(ConfigEditor))
