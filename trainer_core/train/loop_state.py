"""The training loop's moving state, as objects the `Trainer` creates in one place.

`DataPosition` is where the loop stands in the data (saved in every checkpoint); `Interval` is what it counts
between two logged steps; `StepCounters` are the per-step outcomes kept on the device until the next logged
step reads them (no host sync per step); `SteadyRate` measures tokens/s once the first steps are behind;
`IntervalReading` is what one logged step reads at its host sync, `RunTotals` what the run has trained so far,
`StopReason` why `fit()` ended.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

import torch

from trainer_core.train.telemetry.step_stats import IntervalStats


@dataclass
class DataPosition:
    """Where the loop stands in the data (saved in every checkpoint): the loader serves batches by this."""

    epoch: int = 0
    batch_in_epoch: int = 0
    """Global micro-batches of this epoch already taken (every rank takes its share of each)."""


@dataclass
class Interval:
    """What the loop counts between two logged steps; `restart` begins the next interval."""

    start: float = field(default_factory=time.time)
    steps: int = 0
    """Optimizer steps since the last `step` event."""
    input_tokens: int = 0
    """Input tokens (padding excluded) this rank fed the model since the last `step` event."""
    attention_pairs: int = 0
    """Query-key pairs those tokens attended (`Batch.attention_pairs`): the attention part of MFU's FLOPs."""

    def exclude(self, seconds: float) -> None:
        """Time spent on something else (answering a chat request) does not count in this interval's rates."""
        self.start += seconds

    def restart(self) -> None:
        self.start = time.time()
        self.steps = 0
        self.input_tokens = 0
        self.attention_pairs = 0


class StepCounters:
    """Outcomes of every optimizer step, accumulated on the device: read once per logged step."""

    def __init__(self, device: torch.device):
        self.nan_streak = torch.zeros((), device=device)
        """Non-finite steps in a row, now."""
        self.max_streak = torch.zeros((), device=device)
        """The longest such run since the last read."""
        self.skipped = torch.zeros((), device=device)
        """Steps skipped since the last read (a non-finite or fully zeroed loss)."""
        self.grad_norm = torch.zeros((), device=device)
        """The last finite gradient norm."""

    def record(self, norm: torch.Tensor, bad: torch.Tensor) -> None:
        """Count one optimizer step (device ops only: no host sync)."""
        nonfinite = (~torch.isfinite(norm)).float()
        self.nan_streak = (self.nan_streak + 1) * nonfinite
        self.max_streak = torch.maximum(self.max_streak, self.nan_streak)
        self.skipped += bad.float()
        self.grad_norm = torch.where(torch.isfinite(norm), norm.detach().float(), self.grad_norm)

    def read(self) -> tuple[float, float, float]:
        """(longest non-finite streak, skipped steps, grad norm) since the last read; starts the next interval."""
        # Host sync: one small transfer, at the logged step's sync point.
        max_streak, skipped, grad_norm = torch.stack([self.max_streak, self.skipped, self.grad_norm]).tolist()
        self.max_streak.zero_()
        self.skipped.zero_()
        return max_streak, skipped, grad_norm


@dataclass
class SteadyRate:
    """Input tokens per second from the second logged step on: the first ones pay for warm-up."""

    since: tuple[float, int] | None = None
    """(time, input tokens so far) when the steady part began."""

    def mark(self, step: int, now: float, input_tokens: int) -> None:
        if self.since is None and step >= 2:
            self.since = (now, input_tokens)

    def exclude(self, seconds: float) -> None:
        if self.since is not None:
            self.since = (self.since[0] + seconds, self.since[1])

    def rate(self, input_tokens: int) -> float | None:
        """Tokens/s since `since`; None before it, or when no token has passed since."""
        if self.since is None or time.time() <= self.since[0]:
            return None
        tokens = input_tokens - self.since[1]
        return tokens / (time.time() - self.since[0]) if tokens > 0 else None


@dataclass
class RunTotals:
    """What the run has trained so far, over every logged step (summary.json; kept in every checkpoint)."""

    zone_counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    train_tokens: int = 0
    input_tokens: int = 0
    skipped_steps: int = 0
    special_tokens: int = 0
    """Target tokens that are the chat template's structural tokens (nlirg.protect_special_tokens)."""

    def add(self, zone_counts: list[int], target_tokens: int, input_tokens: int, skipped: int,
            special_tokens: int) -> None:
        self.zone_counts = [a + b for a, b in zip(self.zone_counts, zone_counts, strict=True)]
        self.train_tokens += target_tokens
        self.input_tokens += input_tokens
        self.skipped_steps += skipped
        self.special_tokens += special_tokens

    @classmethod
    def of(cls, state: dict) -> RunTotals:
        """From a checkpoint's `totals` (a field added since the checkpoint starts at 0)."""
        return cls(list(state["zone_counts"]), int(state["train_tokens"]), int(state["input_tokens"]),
                   int(state["skipped_steps"]), int(state.get("special_tokens", 0)))


class StopReason(str, Enum):
    """Why `fit()` ended; the value is the `end` event's `reason`."""

    COMPLETED = "completed"
    STOPPED = "stopped"
    NAN = "nan"
    """training.max_nan_steps steps in a row had a non-finite loss or gradient, or the weights at the end were
    not finite (final/ not written)."""
    DISK = "disk"
    """final/ could not be written."""

    @property
    def status(self) -> str:
        """The run's end status: completed, stopped, or failed."""
        return self.value if self in (StopReason.COMPLETED, StopReason.STOPPED) else "failed"


@dataclass
class IntervalReading:
    """One logging interval, read at the one host sync of a logged step (`Trainer._read_interval`)."""

    stats: IntervalStats
    input_tokens: int
    attention_pairs: int
    max_streak: float
    skipped: int
    grad_norm: float | None
    elapsed_s: float
    steps: int


@dataclass
class EarlierSessions:
    """What the trainer sessions before a resume left (saved in every checkpoint): a resumed run's summary
    accumulates its wall time and keeps its last losses and evaluation until this session logs its own."""

    wall_s: float = 0.0
    final_loss: float | None = None
    final_weighted_loss: float | None = None
    eval: dict | None = None

    @classmethod
    def of(cls, state: dict) -> EarlierSessions:
        """From a checkpoint's state (older checkpoints noted none of it: a fresh start)."""
        return cls(float(state.get("wall_s") or 0.0), state.get("final_loss"), state.get("final_weighted_loss"),
                   state.get("eval"))

    def carried(self, session_s: float, last, last_eval: dict | None) -> dict:
        """The run's totals so far: this session's seconds added, its last interval's losses (`last`, an
        `IntervalStats` or None) and evaluation where it has them."""
        return {"wall_s": round(self.wall_s + session_s, 3),
                "final_loss": last.loss if last is not None else self.final_loss,
                "final_weighted_loss": last.weighted_loss if last is not None else self.final_weighted_loss,
                "eval": last_eval if last_eval is not None else self.eval}
