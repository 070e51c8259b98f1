"""The workbench app: themes, the screen to start on, and the command palette's steering entries."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.screen import Screen

from nlirg_tui.screens.data import DataScreen
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.screens.runs import RunsScreen
from nlirg_tui.settings import load_settings, save_setting
from nlirg_tui.theme_files import DEFAULT_THEME, bundled_themes

DEMO_DEFAULTS: list[str] = []
"""`nlirg demo`'s default overrides; nlirg_tui.cli passes its own list (cli/common.py) so both start the same demo."""


class NlirgApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "nlirg"

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


def run_attached(run_dir: Path) -> None:
    """`nlirg attach RUN` and `nlirg demo`: the Run screen on one run."""
    NlirgApp(run_dir=Path(run_dir)).run()


def run_home(root: Path, demo_overrides: list[str]) -> None:
    """`nlirg` with no command: the Runs screen."""
    NlirgApp(root=root, demo_overrides=demo_overrides).run()


def run_review(review_file: Path, run_dir: Path | None) -> None:
    """`nlirg review FILE`: the Data screen on a score file or a run's flagged samples."""
    NlirgApp(review=DataScreen(review_file, run_dir, standalone=True)).run()
