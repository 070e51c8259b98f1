"""One daemon thread that makes the trackers' calls (W&B, MLflow, trackio) in order, off the training loop.

A tracker can talk to a server: MLflow's `log_batch` is an HTTP request per logged step, and a slow or unreachable
server would otherwise hold up every step (or the run's start, for `init`). The loop hands calls over without
waiting; a queue of `MAX_PENDING` calls bounds the memory a stuck tracker can take (the calls beyond it are
dropped, and the trackers' owner says so once). At the end of the run the owner waits a bounded time for the calls
still queued.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

MAX_PENDING = 10_000
"""Tracker calls waiting at most (a logged step is one call): hours of steps behind a stalled server."""

_END = None


class TrackerThread:
    """Runs the calls it is given, one after another, on its own daemon thread. A call must catch its own
    errors (a tracker's failure switches that tracker off; it never ends the thread)."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._calls: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max_pending)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="nlirg-trackers", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], None]) -> bool:
        """Queue `call` without waiting; False (and counted in `dropped`) when the queue is full."""
        try:
            self._calls.put_nowait(call)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def finish(self, last: Callable[[], None], timeout: float) -> bool:
        """Queue `last` and the end, waiting for room if need be, then wait for the thread to run them; False
        when `timeout` seconds were not enough (the thread is a daemon: it does not keep the process alive)."""
        deadline = time.monotonic() + timeout
        try:
            self._calls.put(last, timeout=timeout)
            self._calls.put(_END, timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Full:
            return False
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (call := self._calls.get()) is not _END:
            call()
