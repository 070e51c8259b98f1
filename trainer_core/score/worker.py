"""One process of --num-procs (`parallel.ScorePool` spawns them): its own device, the model loaded once, then
one share of each chunk after another from its inbox, signals and progress sent back on the pool's queue."""

from __future__ import annotations

import os
import traceback

import torch

from trainer_core.score.lifetime import die_with_parent
from trainer_core.score.options import ScoreOptions
from trainer_core.score.scoring import device_for, score_items, scoring_model


def worker_main(opts: ScoreOptions, pad_id: int, rank: int, inbox, outbox) -> None:
    """Score the item lists `inbox` brings until it brings None; each answered by ("done", rank, pid, signals,
    bare) on `outbox` (an error by ("error", rank, traceback), and the process ends)."""
    die_with_parent()  # a killed scorer takes its workers with it (lifetime.guard set PARENT_ENV to its pid)
    try:
        if not torch.cuda.is_available():
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // opts.num_procs))
        model, dtype = scoring_model(opts, device_for(rank))
        while (items := inbox.get()) is not None:
            signals, bare = score_items(model, items, pad_id, opts, dtype,
                                        lambda n, t: outbox.put(("progress", rank, n, t)))
            outbox.put(("done", rank, os.getpid(), signals, bare))
    except BaseException:  # noqa: BLE001 - handed to the parent, which raises it with this traceback
        outbox.put(("error", rank, traceback.format_exc()))
        raise SystemExit(1) from None
