"""The log pane: the trainer's log events and every acked command, newest last."""

from __future__ import annotations

from textual.widgets import RichLog

from nlirg_tui.state import RunState


class LogPane(RichLog):
    """Writes only the lines added since the last update, so a long log costs nothing to keep current."""

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=2000, wrap=True, markup=False, **kwargs)
        self._written = 0

    def update_from(self, state: RunState) -> None:
        new = min(state.log_count - self._written, len(state.log))
        if new <= 0:
            return
        for line in list(state.log)[-new:]:
            self.write(line)
        self._written = state.log_count
