"""The workbench app: themes, the screen to start on, and the command palette's steering entries."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual import events
from textual.app import App, SystemCommand
from textual.screen import Screen

from nlirg_tui.messages import OpenRun
from nlirg_tui.screens.data import DataScreen
from nlirg_tui.screens.dialogs import early_key_target
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.screens.runs import RunsScreen
from nlirg_tui.settings import load_settings, save_setting
from nlirg_tui.theme_files import DEFAULT_THEME, bundled_themes

DEMO_DEFAULTS: list[str] = []
"""`nlirg demo`'s default overrides; nlirg_tui.cli passes its own list (cli/common.py) so both start the same demo."""

ESC_DIGIT_GAP_S = 0.1
"""After the Esc of an Esc+digit burst, how long the digit waits: the Esc is handled first (its widget may hand
the focus back), so the digit reaches whatever has the focus then."""


def esc_digit(event: events.Event) -> str | None:
    """The digit of a terminal key read as Option+digit (`alt+3`), else None. The workbench binds no Option key."""
    if isinstance(event, events.Key) and not event.is_forwarded and event.key.startswith("alt+"):
        rest = event.key[4:]
        return rest if len(rest) == 1 and rest.isdigit() else None
    return None


class NlirgApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "nlirg"

    async def on_event(self, event: events.Event) -> None:
        """Esc then a digit typed quickly reach the terminal's reader in one burst, which reads them as Option+digit
        (`alt+3`): they are Esc (leave the editor) and the digit (show that pane), in that order."""
        dialog = early_key_target(self, event)
        if dialog is not None:  # typed before the dialog opened, in the same burst as the key that opened it
            dialog.type_ahead(event)
            return
        digit = esc_digit(event)
        if digit is None:
            await super().on_event(event)
            return
        await super().on_event(events.Key("escape", "\x1b"))
        self.set_timer(ESC_DIGIT_GAP_S, lambda: self.post_message(events.Key(digit, digit)))

    def __init__(self, run_dir: Path | None = None, root: Path = Path("runs"),
                 demo_overrides: list[str] | None = None, review: DataScreen | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.review = review
        self.root = root
        self.demo_overrides = demo_overrides if demo_overrides is not None else DEMO_DEFAULTS
        for theme in bundled_themes():
            self.register_theme(theme)
        saved = load_settings().get("theme")
        self.theme = saved if saved in self.available_themes else DEFAULT_THEME
        self._theme_ready = True

    def on_mount(self) -> None:
        if self.review is not None:
            self.push_screen(self.review)
        elif self.run_dir is not None:
            self.push_screen(RunScreen(self.run_dir, standalone=True))
        else:
            self.push_screen(RunsScreen(self.root, self.demo_overrides))

    def on_open_run(self, message: OpenRun) -> None:
        """A relaunch's new run replaces the screen that started it."""
        self.switch_screen(RunScreen(message.run_dir, standalone=message.standalone))

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "_theme_ready", False):
            save_setting("theme", theme)  # chosen in the palette: remembered for next time

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, RunScreen):
            yield SystemCommand("Pause / resume the run", "Toggle pause at the next step", screen.action_pause_resume)
            yield SystemCommand("Save a checkpoint", "Checkpoint at the next step", screen.action_save)
            yield SystemCommand("Stop the run", "Checkpoint, then stop", screen.action_stop)
            yield SystemCommand("LR scale", "Multiply the learning rate schedule", screen.action_lr_scale)
            yield SystemCommand("NLIRG parameters", "Weighting, thresholds and curve", screen.action_nlirg)
            yield SystemCommand("Export flagged samples", "Write review.jsonl", screen.action_export)
            yield SystemCommand("Chat with the model (t)", "Ask it now; the base model answers beside it",
                                screen.action_chat)


def run_attached(run_dir: Path) -> None:
    """`nlirg attach RUN` and `nlirg demo`: the Run screen on one run."""
    NlirgApp(run_dir=Path(run_dir)).run()


def run_home(root: Path, demo_overrides: list[str]) -> None:
    """`nlirg` with no command: the Runs screen."""
    NlirgApp(root=root, demo_overrides=demo_overrides).run()


def run_review(review_file: Path, run_dir: Path | None) -> None:
    """`nlirg review FILE`: the Data screen on a score file or a run's flagged samples."""
    NlirgApp(review=DataScreen(review_file, run_dir, standalone=True)).run()
