"""Score rows on disk while a corpus is scored: each row is written as soon as its record is scored, and only its
score, read-order index, place in the spool and the summary's counts stay in memory. Quality is computed from
the scores alone and the score file is then written worst first by reading the rows back by place, so memory
stays flat in the number of records (`python -m bench.score_memory`)."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer_core.atomic import atomic_writer
from trainer_core.score.output import rank_key, tied_scores
from trainer_core.score.quality import band_counts, qualities


class RowSpool:
    """Unsorted rows in an anonymous temporary file beside the score file (same disk; nothing left behind, even
    when the process is killed, where the system supports unnamed files)."""

    def __init__(self, folder: Path):
        self._fh = tempfile.TemporaryFile(mode="w+b", dir=folder, prefix=".score-rows-")
        self.scores: list[float] = []
        self.indexes: list[int] = []
        self.mean_losses: list[float | None] = []
        self.offsets: list[int] = []
        self.flags: Counter[str] = Counter()
        self.answer_tokens = 0

    def __len__(self) -> int:
        return len(self.scores)

    def add(self, row: dict[str, Any]) -> None:
        self.offsets.append(self._fh.tell())
        self._fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n")
        self.scores.append(row["score"])
        self.indexes.append(row["index"])
        self.mean_losses.append(row["mean_loss"])
        self.flags.update(row["flags"])
        self.answer_tokens += row["answer_tokens"]

    def ranked(self) -> tuple[list[int], list[float]]:
        """(spool positions worst first, as `output.rank_rows` orders rows; the quality of every spooled row, by
        position). Quality comes from each row's own score, so it cannot be paired with another record."""
        order = sorted(range(len(self.scores)),
                       key=lambda k: rank_key(self.scores[k], self.mean_losses[k], self.indexes[k]))
        return order, [round(q, 4) for q in qualities(self.scores)]

    def rows(self, positions: list[int], quality: list[float]) -> Iterator[dict[str, Any]]:
        """The rows at `positions`, in that order, each with its quality."""
        self._fh.flush()
        for k in positions:
            self._fh.seek(self.offsets[k])
            row = json.loads(self._fh.readline())
            row["quality"] = quality[k]
            yield row

    def write_ranked(self, out: Path, top: int) -> tuple[list[int], list[float]]:
        """Write the score file worst first (the `top` worst rows; 0: all) atomically; return `ranked()`."""
        order, quality = self.ranked()
        kept = order[:top] if top else order
        with atomic_writer(out) as fh:
            for row in self.rows(kept, quality):
                fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        return order, quality

    def summary_counts(self, quality: list[float]) -> dict[str, Any]:
        """What `output.make_summary` counts, from the spool's running totals (for `output.summary_of`)."""
        return {"records": len(self), "answer_tokens": self.answer_tokens, "tied": tied_scores(self.scores),
                "bands": band_counts(quality), "flags": self.flags}

    def close(self) -> None:
        self._fh.close()
