"""--num-procs N: the items dealt round-robin to N spawned processes (one GPU each where there are several;
CPU threads shared out otherwise); their signals merged back by record index."""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_module

from trainer_core.score.encode import ScoreItem
from trainer_core.score.options import ScoreOptions
from trainer_core.score.scoring import Signals
from trainer_core.score.worker import worker_main

POLL_S = 1.0


class ScoreProcessError(RuntimeError):
    """A scoring process failed; the message carries its traceback (a bug, not a user error)."""


def score_in_processes(opts: ScoreOptions, items: list[ScoreItem], pad_id: int, advance) -> tuple[Signals, Signals]:
    ctx = mp.get_context("spawn")  # CUDA and forked torch threads do not mix
    messages = ctx.Queue()
    procs = [ctx.Process(target=worker_main, args=(opts, items[rank::opts.num_procs], pad_id, rank, messages),
                         daemon=True) for rank in range(opts.num_procs)]
    for proc in procs:
        proc.start()
    signals: Signals = {}
    bare: Signals = {}
    done: set[int] = set()
    try:
        while len(done) < len(procs):
            try:
                kind, rank, *payload = messages.get(timeout=POLL_S)
            except queue_module.Empty:
                _check_alive(procs, done)
                continue
            if kind == "progress":
                advance(*payload)
            elif kind == "done":
                signals.update(payload[0])
                bare.update(payload[1])
                done.add(rank)
            else:
                raise ScoreProcessError(f"scoring process {rank} failed:\n{payload[0]}")
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
    return signals, bare


def _check_alive(procs: list, done: set[int]) -> None:
    for rank, proc in enumerate(procs):
        if rank not in done and proc.exitcode not in (None, 0):
            raise ScoreProcessError(f"scoring process {rank} died with exit code {proc.exitcode}")
