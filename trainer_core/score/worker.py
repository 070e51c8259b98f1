"""One process of --num-procs (`parallel` spawns them): its own device, its share of the items, its signals and
progress sent back on a queue."""

from __future__ import annotations

import os
import traceback

import torch

from trainer_core.score.encode import ScoreItem
from trainer_core.score.lifetime import die_with_parent
from trainer_core.score.options import ScoreOptions
from trainer_core.score.scoring import device_for, score_items, scoring_model


def worker_main(opts: ScoreOptions, items: list[ScoreItem], pad_id: int, rank: int, queue) -> None:
    """One process of --num-procs: its own device (CPU threads shared out), its share of the items."""
    die_with_parent()  # a killed scorer takes its workers with it (lifetime.guard set PARENT_ENV to its pid)
    try:
        if not torch.cuda.is_available():
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // opts.num_procs))
        model, dtype = scoring_model(opts, device_for(rank))
        signals, bare = score_items(model, items, pad_id, opts, dtype,
                                    lambda n, t: queue.put(("progress", rank, n, t)))
        queue.put(("done", rank, signals, bare))
    except BaseException:  # noqa: BLE001 - handed to the parent, which raises it with this traceback
        queue.put(("error", rank, traceback.format_exc()))
        raise SystemExit(1) from None
