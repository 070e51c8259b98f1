"""The trainer's log lines as events: what trainer.log says (resumed from ..., parameter counts, warnings) is
also a `log` event (an `error` event for an error), so the workbench's Log pane and `nlirg attach --stream` show
it, live or replayed.

A record that already has its own event (a checkpoint failure emits `error` itself) or that the event log
writes about itself (a full disk) is logged with `extra=NOT_AN_EVENT` and is not repeated.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

NOT_AN_EVENT = {"as_event": False}
"""`log.error(msg, extra=NOT_AN_EVENT)`: this line goes to trainer.log only."""


class LogEvents(logging.Handler):
    """Emits every INFO-or-higher record of the `trainer_core` logger into a run's event log."""

    def __init__(self, events: Any) -> None:
        super().__init__(logging.INFO)
        self.events = events
        self._inside = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, "as_event", True) or getattr(self._inside, "busy", False):
            return
        self._inside.busy = True  # whatever the event log logs while writing this one stays in trainer.log
        try:
            message = record.getMessage()
            if record.levelno >= logging.ERROR:
                self.events.emit("error", message=message)
            else:
                self.events.emit("log", level="warning" if record.levelno >= logging.WARNING else "info",
                                 message=message)
        finally:
            self._inside.busy = False


def mirror_log(logger: logging.Logger, events: Any) -> LogEvents:
    """Attach the mirror to `logger`; returns it so the caller can remove it when the event log closes."""
    handler = LogEvents(events)
    logger.addHandler(handler)
    return handler
