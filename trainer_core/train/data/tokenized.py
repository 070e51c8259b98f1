"""`TokenizedSet`: a memory-mapped Arrow table of token rows that reads as a sequence of `Sample`s; `PreparedData`:
a run's train and eval tables with their report.

Nothing holds the corpus as Python lists: the lengths, target counts and sources are small numpy columns
(what the sampler and the step count need), and token ids are read from the mapped table a batch at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trainer_core.data.exclude import Exclusion
from trainer_core.train.data.batch import Sample
from trainer_core.train.data.tokenize import labels_from_spans

if TYPE_CHECKING:
    from datasets import Dataset

    from trainer_core.data.corpus import SourceRecords


class TokenizedSet(Sequence):
    """Rows of token ids with their target spans; `set[i]` is a Sample whose `sample_id` is i."""

    def __init__(self, dataset: Dataset, sources: list[SourceRecords], packed: bool = False):
        import pyarrow.compute as pc

        self.dataset = dataset
        self.sources = sources
        """The normalised records the rows came from: `origin` names a row's file and line."""
        self.packed = packed
        table = dataset.data
        self._columns = {}
        """Per column read by `rows`: chunk start offsets and the chunks of the memory-mapped pyarrow table."""
        for name in ("input_ids", "spans", *(["seg_starts"] if packed else [])):
            chunks = table.table.column(name).chunks
            self._columns[name] = (np.cumsum([0] + [len(c) for c in chunks]), chunks)
        self.lengths = pc.list_value_length(table.column("input_ids")).to_numpy().astype(np.int64)
        self.target_counts = table.column("targets").to_numpy().astype(np.int64)
        self.source_ids = table.column("source").to_numpy().astype(np.int64)
        self.record_ids = table.column("record").to_numpy().astype(np.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            return self.rows([int(index)])[0]
        if isinstance(index, slice):
            return self.rows(range(*index.indices(len(self))))
        return self.rows(index)

    def __iter__(self) -> Iterator[Sample]:
        for start in range(0, len(self), 512):
            yield from self.rows(range(start, min(len(self), start + 512)))

    def rows(self, indices: Sequence[int] | np.ndarray) -> list[Sample]:
        """The Samples at `indices`, read from the mapped table in one take."""
        out = []
        for i in (int(i) for i in indices):
            ids = self._cell("input_ids", i)
            segments = _segments(self._cell("seg_starts", i), len(ids)) if self.packed else None
            out.append(Sample(ids, labels_from_spans(ids, self._cell("spans", i)), i, segments))
        return out

    def _cell(self, column: str, row: int) -> Any:
        """One value read straight from its chunk of the mapped table (a take over chunks would copy more)."""
        offsets, chunks = self._columns[column]
        chunk = int(np.searchsorted(offsets, row, side="right")) - 1
        return chunks[chunk][row - int(offsets[chunk])].as_py()

    def origin(self, index: int) -> dict[str, Any]:
        """Where row `index` (its first record, for a packed row) came from: file, line or record number, id."""
        source = self.sources[int(self.source_ids[index])]
        record = source.dataset.select_columns(["file", "line", "id"])[int(self.record_ids[index])]
        return {"source": source.files[record["file"]], "line": record["line"], "id": record["id"]}

    @property
    def total_tokens(self) -> int:
        return int(self.lengths.sum())


def _segments(starts: list[int], length: int) -> list[int]:
    """Segment number per token from the segments' start positions."""
    out = [0] * length
    for number, (start, end) in enumerate(zip(starts, [*starts[1:], length], strict=True)):
        out[start:end] = [number] * (end - start)
    return out


@dataclass
class PreparedData:
    """A run's data as `prepare.prepare_data` leaves it: the train and eval tables and what they hold."""

    train: TokenizedSet
    eval: TokenizedSet | None
    report: dict[str, Any]
    """What meta.json says: per source records, samples, tokens read and kept; totals."""
    key: str
    cached: bool
    """True when the tokens came from the cache (no tokenization in this process)."""
    exclusion: Exclusion | None = None
    """What data.exclude left out (None without data.exclude)."""
