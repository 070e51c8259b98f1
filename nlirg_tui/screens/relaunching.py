"""The relaunch both the Run screen (an edited config) and the Data screen (cleaned data) offer: one dialog about
the weights, and the new run shown in place of the screen that asked. How a live run is stopped first differs (the
Run screen has a link to it, the Data screen sends `stop` itself), so that stays with each screen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.screen import Screen

from nlirg_tui.launching import LaunchError, latest_checkpoint
from nlirg_tui.messages import OpenRun
from nlirg_tui.screens.dialogs import ask, relaunch_dialog


def resume_label(run_dir: Path, live: bool) -> str | None:
    """What the dialog offers to resume the weights from; None: nothing, a fresh start only. A live run's stop
    writes a checkpoint, so its weights can be resumed even if none exists yet."""
    if live:
        return "the checkpoint its stop writes"
    ckpt = latest_checkpoint(run_dir)
    return ckpt.name if ckpt else None


def ask_relaunch(screen: Screen, run_dir: Path, live: bool, source: str, then: Callable[[str | None], None]) -> None:
    """The weights dialog over `screen`; `then` gets `resume`, `fresh`, `cancel` or None."""
    ask(screen, relaunch_dialog(resume_label(run_dir, live), source), then)


def open_new_run(screen: Screen, start: Callable[[], Path], standalone: bool) -> None:
    """Start a run (`start` returns its directory) and show it in place of `screen` (the app's `OpenRun`); a
    failure is a notification."""
    try:
        new_dir = start()
    except (LaunchError, OSError) as exc:
        screen.notify(f"relaunch failed: {exc}", severity="error", timeout=10)
        return
    screen.post_message(OpenRun(new_dir, standalone))
