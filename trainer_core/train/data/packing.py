"""Cutting CPT documents into rows without losing a token (issue: packing used to drop whole documents' tails).

Documents are laid one after another; a row ends at `row_length` tokens and a document that does not fit goes
on at the start of the next row. Each part of a document in a row is its own *segment*: attention stays inside
it (a block-diagonal causal mask) and its positions restart at 0. A continued part begins with the last token
of the part before it, as context only, so the token after the cut is still predicted from its predecessor:
every token of a document but its first is a target exactly once, as without packing. The first token of a
segment is never a target (nothing in the segment predicts it).

Without packing (`pack=False`) every document starts a row of its own, and one longer than `row_length` is split
the same way into several rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class Row:
    """One training row of CPT tokens."""

    input_ids: list[int] = field(default_factory=list)
    seg_starts: list[int] = field(default_factory=list)
    """Where each segment begins (the first is 0)."""
    record: int = -1
    """The record its first segment came from."""
    pieces: int = 0
    """Segments that continue a document cut at the end of an earlier row."""

    @property
    def spans(self) -> list[int]:
        """Target spans: every segment's tokens but its first."""
        ends = [*self.seg_starts[1:], len(self.input_ids)]
        return [x for start, end in zip(self.seg_starts, ends, strict=True) if end - start > 1
                for x in (start + 1, end)]

    @property
    def targets(self) -> int:
        return sum(end - start for start, end in zip(self.spans[::2], self.spans[1::2], strict=True))


def cut_rows(docs: Iterable[tuple[int, list[int]]], row_length: int, pack: bool = True) -> Iterator[Row]:
    """Rows of at most `row_length` tokens from (record, token ids) documents, in order; see the module doc."""
    if row_length < 2:
        raise ValueError(f"row_length must be >= 2, got {row_length}")
    row = Row()
    for record, doc in docs:
        if row.input_ids and not pack:
            yield row
            row = Row()
        pos, first = 0, True
        while pos < len(doc):
            if row_length - len(row.input_ids) < 2:  # a 1-token segment would train nothing
                yield row
                row = Row()
            start = pos if first else pos - 1  # a continued part repeats the token before the cut as context
            piece = doc[start:start + row_length - len(row.input_ids)]
            if not row.input_ids:
                row.record = record
            row.seg_starts.append(len(row.input_ids))
            row.input_ids += piece
            row.pieces += 0 if first else 1
            pos, first = start + len(piece), False
    if row.input_ids:
        yield row
