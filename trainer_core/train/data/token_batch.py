"""token_batch: one optimizer step (or accumulation micro-step) per window of N target tokens.

How windows are cut (the reference's semantics, without its dropped tail, dropped last token or
batch_size = 1 limit):

- A row's target tokens are its positions t >= 1 whose label is not IGNORE (the token at t is predicted
  from position t - 1), counted in the row's own order.
- Window k of a batch takes target tokens [kN, (k+1)N) of *every* row. A row with fewer than kN + 1
  targets has run out and drops out of window k; the last window of a row holds its `count mod N`
  tail (or a full N). A batch has ceil(max row target count / N) windows, and every target token of
  the batch is in exactly one of them.

What makes a window cheap, without changing the math: its loss depends only on positions up to its last
label (causal attention never looks ahead), so the forward runs on that prefix only; the rows that ran out
are left out of the forward altogether; and the LM head runs only on the window's own positions (see
`step.token_losses`). Nothing is reused across windows: each one runs under the weights left by the
previous window's step.

Everything here is planned on the host from the host copy of the labels, so cutting windows never waits
for the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from trainer_core.config import ConfigError
from trainer_core.train.data.batch import IGNORE, Batch


@dataclass(frozen=True)
class Window:
    """One window of a batch, in the batch's coordinates."""

    index: int
    """Window number k inside its batch (0-based)."""
    rows: list[int]
    """Batch rows that still have target tokens in this window."""
    label_mask: torch.Tensor
    """(len(rows), prefix_len) bool: True at the label positions this window trains."""
    prefix_len: int
    """Every label of the window lies in positions [0, prefix_len): the forward needs no more."""
    target_tokens: int
    """Target tokens in this window (N for all but the last windows of rows)."""
    input_tokens: int
    """Input tokens this window moves the data position forward by; they sum to the batch's tokens."""


def target_positions(labels: torch.Tensor) -> list[list[int]]:
    """Per row, the positions t >= 1 whose label is trained, in order."""
    trained = labels != IGNORE
    trained[:, 0] = False  # nothing predicts position 0
    return [torch.nonzero(row, as_tuple=True)[0].tolist() for row in trained]


def windows_in_rows(target_counts: Sequence[int], size: int) -> int:
    """How many windows a batch whose rows have these target counts is cut into."""
    return math.ceil(max(target_counts, default=0) / size)


def plan_windows(labels: torch.Tensor, lengths: Sequence[int], size: int) -> list[Window]:
    """Cut a batch into windows of `size` target tokens per row (see the module docstring).

    `labels` is the (B, T) host label tensor, `lengths` the unpadded length of every row.
    """
    if size < 1:
        raise ValueError(f"token_batch window size must be >= 1, got {size}")
    positions = target_positions(labels)
    count = windows_in_rows([len(p) for p in positions], size)
    covered = [0] * len(positions)  # per row: positions [0, covered) already counted as input tokens
    windows = []
    for k in range(count):
        rows = [r for r, pos in enumerate(positions) if len(pos) > k * size]
        chunks = [positions[r][k * size:(k + 1) * size] for r in rows]
        prefix_len = max(chunk[-1] for chunk in chunks) + 1
        mask = torch.zeros(len(rows), prefix_len, dtype=torch.bool)
        input_tokens = 0
        for i, (r, chunk) in enumerate(zip(rows, chunks, strict=True)):
            mask[i, chunk] = True
            last_of_row = len(positions[r]) <= (k + 1) * size
            end = lengths[r] if last_of_row else chunk[-1] + 1  # a row's last window also takes its trailing tokens
            input_tokens += end - covered[r]
            covered[r] = end
        windows.append(Window(k, rows, mask, prefix_len, sum(len(c) for c in chunks), input_tokens))
    return windows


def select(batch: Batch, window: Window) -> Batch:
    """The window's rows of `batch`, cut to the window's prefix: exactly what its forward needs."""
    p = window.prefix_len
    idx = torch.tensor(window.rows, dtype=torch.long)
    attn = batch.attention_mask.index_select(0, idx)
    attn = attn[..., :p, :p] if attn.dim() == 4 else attn[:, :p]
    return Batch(
        input_ids=batch.input_ids.index_select(0, idx)[:, :p],
        labels=batch.labels.index_select(0, idx)[:, :p],
        attention_mask=attn,
        position_ids=batch.position_ids.index_select(0, idx)[:, :p],
        sample_ids=[batch.sample_ids[r] for r in window.rows],
        filler=batch.filler,
    )


def row_lengths(batch: Batch) -> list[int]:
    """Unpadded length of every row of a (right-padded, unpacked) batch."""
    if batch.attention_mask.dim() != 2:
        raise ValueError("token_batch needs unpacked rows (2-D padding mask); packing is for CPT only")
    return batch.attention_mask.sum(dim=1).tolist()  # host tensor: no device sync


@dataclass
class WindowStep:
    """What one token_batch micro-step trains: the window's sub-batch (host) and its label mask."""

    batch: Batch
    label_mask: torch.Tensor
    window: Window


class WindowStream:
    """The loop's position inside the windows of the current batch.

    Checkpoints fall on optimizer-step boundaries, which are window boundaries; `done_in_batch` is what a
    checkpoint records so that a resumed run fetches the same batch again and continues at the next window.
    """

    def __init__(self, size: int):
        self.size = size
        self.batch: Batch | None = None
        self.windows: list[Window] = []
        self.done = 0
        """Windows of the current batch already trained."""
        self._resume_at = 0
        self._row_last: list[int] = []
        """Per row of the current batch: the index of its last window."""

    @property
    def rows_finished(self) -> int:
        """Rows of the current batch whose every target token has been trained."""
        return sum(1 for last in self._row_last if last < self.done)

    @property
    def done_in_batch(self) -> int:
        """Windows done in a batch that is not finished yet (0 when the next window starts a new batch)."""
        return 0 if self.batch_finished else self.done

    @property
    def batch_finished(self) -> bool:
        return self.batch is None or self.done >= len(self.windows)

    @property
    def share_left(self) -> float:
        """Share of the current batch's windows still to train (for a smooth epoch progress)."""
        return 0.0 if self.batch_finished else 1 - self.done / len(self.windows)

    def resume_at(self, done: int, size_then: int | None) -> None:
        """After a restore: the next batch fetched is the half-trained one; skip its first `done` windows."""
        if size_then != self.size:
            raise ConfigError([f"training.token_batch: the checkpoint stopped inside a batch cut into windows of "
                               f"{size_then} target tokens; resume with training.token_batch={size_then}"], "resume")
        self.batch, self.windows, self.done = None, [], 0
        self._resume_at = done

    def next(self, fetch: Callable[[], Batch]) -> WindowStep:
        """The next window, fetching (and cutting) a new batch when the current one is used up."""
        if self.batch_finished:
            self.batch = fetch()
            self.windows = plan_windows(self.batch.labels, row_lengths(self.batch), self.size)
            rows = range(len(self.batch.sample_ids))
            self._row_last = [max(w.index for w in self.windows if r in w.rows) for r in rows]
            self.done, self._resume_at = self._resume_at, 0
            if self.done >= len(self.windows):
                raise ConfigError([f"training.token_batch: the checkpoint stopped after window {self.done} of a batch "
                                   f"that now has {len(self.windows)}; resume with the data and token_batch it "
                                   "was saved with"], "resume")
        assert self.batch is not None
        window = self.windows[self.done]
        self.done += 1
        return WindowStep(select(self.batch, window), window.label_mask, window)
