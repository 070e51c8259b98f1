"""The held-out split: which records a run evaluates on, torch-free, so the CLI can read them too.

`split_indices` is the one selection the trainer (`prepare`) makes for data.eval_fraction; `held_out_records`
reads the same records into memory (data.eval's, else that split of data.train), after data.exclude.
"""

from __future__ import annotations

import numpy as np

from trainer_core.config import RunConfig
from trainer_core.data.exclude import read_exclude
from trainer_core.data.files import read_records
from trainer_core.data.records import Record


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, eval) record indices, sorted: a deterministic `fraction` held out for evaluation."""
    if fraction <= 0 or n < 2:
        return np.arange(n), np.arange(0)
    held = np.random.default_rng(seed).permutation(n)[: max(1, int(round(n * fraction)))]
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def held_out_records(cfg: RunConfig) -> list[Record]:
    """The records a run evaluates on, read into memory (for small sets: the generation probe): data.eval's, else
    the data.eval_fraction split of data.train. The same selection `_build` makes: `split_indices` over the
    records left after data.exclude, in the order the sources are read, with the run's seed."""
    d = cfg.data
    exclude = read_exclude(d.exclude) if d.exclude else None
    if d.eval:
        return read_records(d.eval, d.format, d.system_prompt, d.text_field, d.columns, exclude=exclude)
    if d.eval_fraction <= 0:
        return []
    records = read_records(d.train, d.format, d.system_prompt, d.text_field, d.columns, exclude=exclude)
    return [records[i] for i in split_indices(len(records), d.eval_fraction, cfg.training.seed)[1]]
