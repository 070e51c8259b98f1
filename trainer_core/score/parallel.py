"""--num-procs N: N spawned processes (one GPU each where there are several; CPU threads shared out otherwise),
started once for the whole corpus: each loads the model once, then takes its round-robin share of every chunk;
their signals are merged back by record index."""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
from collections.abc import Callable

from trainer_core.score.encode import ScoreItem
from trainer_core.score.options import ScoreOptions
from trainer_core.score.scoring import Signals
from trainer_core.score.worker import worker_main

POLL_S = 1.0
JOIN_S = 5.0
"""How long a worker gets to leave after the last chunk before it is terminated."""


class ScoreProcessError(RuntimeError):
    """A scoring process failed; the message carries its traceback (a bug, not a user error)."""


class ScorePool:
    """The --num-procs workers, alive from the first chunk to `close` (a model load per process, not per chunk)."""

    def __init__(self, opts: ScoreOptions, pad_id: int, advance: Callable[[int, int], None]) -> None:
        ctx = mp.get_context("spawn")  # CUDA and forked torch threads do not mix
        self.n = opts.num_procs
        self.advance = advance
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(self.n)]
        self.procs = [ctx.Process(target=worker_main, args=(opts, pad_id, rank, self.inboxes[rank], self.outbox),
                                  daemon=True) for rank in range(self.n)]
        self.pids: set[int] = set()
        """The processes that scored a share: as many as --num-procs however many chunks there were."""
        for proc in self.procs:
            proc.start()

    def score(self, items: list[ScoreItem]) -> tuple[Signals, Signals]:
        """One chunk, dealt round-robin; (signals, bare signals) of all its items."""
        for rank, inbox in enumerate(self.inboxes):
            inbox.put(items[rank::self.n])
        signals: Signals = {}
        bare: Signals = {}
        done: set[int] = set()
        while len(done) < self.n:
            try:
                kind, rank, *payload = self.outbox.get(timeout=POLL_S)
            except queue_module.Empty:
                self._check_alive()
                continue
            if kind == "progress":
                self.advance(*payload)
            elif kind == "done":
                pid, got, got_bare = payload
                self.pids.add(pid)
                signals.update(got)
                bare.update(got_bare)
                done.add(rank)
            else:
                raise ScoreProcessError(f"scoring process {rank} failed:\n{payload[0]}")
        return signals, bare

    def close(self) -> None:
        for proc, inbox in zip(self.procs, self.inboxes, strict=True):
            if proc.is_alive():
                inbox.put(None)
        for proc in self.procs:
            proc.join(timeout=JOIN_S)
            if proc.is_alive():
                proc.terminate()

    def __enter__(self) -> ScorePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_alive(self) -> None:
        for rank, proc in enumerate(self.procs):
            if proc.exitcode not in (None, 0):
                raise ScoreProcessError(f"scoring process {rank} died with exit code {proc.exitcode}")
