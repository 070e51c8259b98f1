"""A screen that re-reads what it shows from disk every POLL_S seconds, but only while it is the screen on top: a
screen pushed over it (a run's view, a dialog) pauses the timer, and coming back reads at once."""

from __future__ import annotations

from textual.screen import Screen
from textual.timer import Timer


class PollingScreen(Screen):
    POLL_S = 2.0
    """Seconds between two reads."""

    def __init__(self) -> None:
        super().__init__()
        self.poll_timer: Timer | None = None

    def on_mount(self) -> None:
        self.poll_timer = self.set_interval(self.POLL_S, self.action_refresh, pause=True)  # started on resume

    def on_screen_suspend(self) -> None:
        if self.poll_timer is not None:
            self.poll_timer.pause()

    def on_screen_resume(self) -> None:
        """On top (shown first, or back from the screen over it; Textual sends this after Mount): read now, then
        every POLL_S."""
        self.action_refresh()
        if self.poll_timer is not None:
            self.poll_timer.resume()

    def action_refresh(self) -> None:
        """Read and show: a thread worker that hands what it read to the UI thread."""
        raise NotImplementedError
