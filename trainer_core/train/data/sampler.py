"""Which rows each micro-batch of each epoch takes, on each rank: a pure function of (seed, epoch, batch).

- An epoch trains every sample exactly once (with several sources and ratios: the epoch's quota of each source,
  see `epoch_samples`). A global batch is `batch_size x world_size` samples; the epoch's last one is partial, and
  each rank takes its contiguous share of it. A rank whose share is empty runs a *filler* batch (a real sample
  whose loss is multiplied by zero), so every rank runs the same forwards and backwards and DeepSpeed's
  collectives stay in step; a filler also completes the run's last optimizer step when the planned batches run
  out before `grad_accum` micro-batches. Fillers train nothing and count nowhere.
- `group_by_length` shuffles, cuts the epoch into megabatches of `MEGABATCH` global batches, sorts each by
  length, and shuffles the order of the full batches: similar lengths share a batch, the order is still random.
- Nothing here has state: a resumed run asks for (epoch, batch) and gets exactly the batch the first run got.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainer_core.train.data.batch import Batch, collate, epoch_order
from trainer_core.train.data.tokenized import TokenizedSet

MEGABATCH = 50
"""Global batches per length-sorted megabatch (as Hugging Face's LengthGroupedSampler)."""


@dataclass(frozen=True)
class SamplerConfig:
    batch_size: int
    """Samples per micro-batch per rank."""
    world_size: int
    rank: int
    seed: int
    group_by_length: bool = False
    ratios: tuple[float, ...] | None = None
    """Per-source shares of each epoch, or None: every sample once."""
    shuffle: bool = True


def quotas(sizes: list[int], ratios: tuple[float, ...] | None) -> list[int]:
    """Samples each source gives per epoch: its size, or its share (largest remainder) of the total size."""
    if ratios is None:
        return list(sizes)
    total = sum(sizes)
    shares = [r / sum(ratios) * total for r in ratios]
    out = [math.floor(s) for s in shares]
    for i in sorted(range(len(out)), key=lambda i: out[i] - shares[i])[: total - sum(out)]:
        out[i] += 1
    return out


def rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng([*parts])


class EpochSampler:
    """Global batches of row indices, epoch by epoch (cached one epoch at a time)."""

    def __init__(self, lengths: np.ndarray, sources: np.ndarray, cfg: SamplerConfig):
        self.cfg = cfg
        self.lengths = lengths
        self.source_ids = sources
        n_sources = int(sources.max()) + 1 if len(sources) else 0
        self.by_source = [np.flatnonzero(sources == s) for s in range(n_sources)]
        self.quotas = quotas([len(rows) for rows in self.by_source], cfg.ratios)
        self.epoch_size = sum(self.quotas)
        self.global_batch = cfg.batch_size * cfg.world_size
        self.batches_per_epoch = max(1, math.ceil(self.epoch_size / self.global_batch))
        self._cached: tuple[int, np.ndarray] | None = None

    def epoch_samples(self, epoch: int) -> np.ndarray:
        """The rows of one epoch, before ordering: every row once, or each source's quota taken from an endless
        stream of its own shuffles (so a source drawn below its size shows other rows in the next epoch)."""
        if self.cfg.ratios is None:
            return np.arange(len(self.lengths))
        parts = []
        for s, (rows, quota) in enumerate(zip(self.by_source, self.quotas, strict=True)):
            start, end = epoch * quota, (epoch + 1) * quota
            cycles = range(start // len(rows), (end - 1) // len(rows) + 1) if quota else range(0)
            stream = np.concatenate([rows[rng(self.cfg.seed, 7919, s, c).permutation(len(rows))] for c in cycles]
                                    ) if quota else np.arange(0)
            offset = cycles.start * len(rows) if quota else 0
            parts.append(stream[start - offset:end - offset])
        return np.concatenate(parts)

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's rows in training order (global batch b is order[b*G:(b+1)*G])."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        samples = self.epoch_samples(epoch)
        order = samples[epoch_order(len(samples), self.cfg.seed, epoch, self.cfg.shuffle)]
        if self.cfg.group_by_length:
            order = self._grouped(order, epoch)
        self._cached = (epoch, order)
        return order

    def _grouped(self, order: np.ndarray, epoch: int) -> np.ndarray:
        g = self.global_batch
        mega = g * MEGABATCH
        chunks = [order[i:i + mega] for i in range(0, len(order), mega)]
        by_length = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        full = len(by_length) // g
        batches = by_length[: full * g].reshape(full, g)[rng(self.cfg.seed, 104729, epoch).permutation(full)]
        return np.concatenate([batches.reshape(-1), by_length[full * g:]])  # the partial batch stays last

    def share(self, epoch: int, batch: int) -> np.ndarray:
        """This rank's rows of global batch `batch` (empty when the partial last batch runs out before it)."""
        start = batch * self.global_batch + self.cfg.rank * self.cfg.batch_size
        return self.order(epoch)[start:min(start + self.cfg.batch_size, (batch + 1) * self.global_batch)]

    def samples_before(self, epoch: int, batch: int) -> int:
        """Samples trained (all ranks) before global batch `batch` of `epoch`."""
        return epoch * self.epoch_size + min(self.epoch_size, batch * self.global_batch)

    def source_counts(self, epoch: int, batch: int) -> list[int]:
        """Samples each source gave (all ranks) before global batch `batch` of `epoch`."""
        done = np.bincount(self.source_ids[self.order(epoch)[: batch * self.global_batch]],
                           minlength=len(self.quotas)) if batch else np.zeros(len(self.quotas), dtype=np.int64)
        return [int(q * epoch + d) for q, d in zip(self.quotas, done, strict=True)]


class BatchLoader:
    """The loop's view of the data: micro-batch (epoch, b) for this rank, collated, and how many there are."""

    def __init__(self, data: TokenizedSet, cfg: SamplerConfig, pad_id: int, pad_to_multiple_of: int = 8,
                 ):
        self.data = data
        self.sampler = EpochSampler(data.lengths, data.source_ids, cfg)
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of
        self.planned: int | None = None
        """Micro-batches (per rank) the run trains; batches past it are fillers. None: no planned end."""

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    def plan(self, epochs: float | None) -> int | None:
        """Plan `epochs` passes (a fractional last epoch takes its first batches); None: until max_steps."""
        self.planned = None if epochs is None else max(1, math.ceil(epochs * self.batches_per_epoch))
        return self.planned

    def beyond_plan(self, epoch: int, batch: int) -> bool:
        return self.planned is not None and epoch * self.batches_per_epoch + batch >= self.planned

    def micro_batch(self, epoch: int, batch: int) -> Batch:
        """This rank's micro-batch `batch` of `epoch`: a filler past the plan or where the rank's share is empty."""
        rows = np.arange(0) if self.beyond_plan(epoch, batch) else self.sampler.share(epoch, batch)
        if len(rows) == 0:
            filler = collate(self.data.rows(self._filler_rows()), self.pad_id, self.multiple)
            filler.filler = True
            return filler
        return collate(self.data.rows(rows), self.pad_id, self.multiple)

    def _filler_rows(self) -> np.ndarray:
        """A real sample to run with zero weight: the first of the first epoch."""
        return self.sampler.order(0)[:1]

    def count_windows(self, size: int) -> int:
        """token_batch: micro-steps (windows of `size` target tokens) in this rank's planned batches."""
        from trainer_core.train.data.token_batch import windows_in_rows

        counts = self.data.target_counts
        filler = counts[self._filler_rows()].tolist()
        total = 0
        for b in range(self.planned or 0):
            rows = self.sampler.share(*divmod(b, self.batches_per_epoch))
            total += windows_in_rows(counts[rows].tolist() if len(rows) else filler, size)
        return total
