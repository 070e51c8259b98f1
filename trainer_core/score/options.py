"""What `nlirg score` was asked to do, checked before anything loads (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer_core.config import DATA_FORMATS
from trainer_core.score.modes import MODES


class ScoreError(ValueError):
    """A user error in the scoring request; the message is one line naming the option and the fix."""


@dataclass
class ScoreOptions:
    data: list[str]
    """Data files, folders or `builtin:` data, as for data.train."""
    model: str
    """Model that scores, as `nlirg eval` takes it: a run or its final/ (a LoRA adapter is merged into its base), a
    checkpoint, a model or adapter folder, a hub id or a builtin."""
    out: Path
    """Score file (JSON lines); its summary goes to OUT.summary.json beside it."""
    mode: str = "divergence"
    """divergence, similarity_rank, filtered_rank or ifd (docs/score.md)."""
    top: int = 0
    """Write only the K worst rows (0 = every record); the summary still counts every record."""
    max_length: int = 1024
    """Longest sample in tokens; longer ones are cut, counted and flagged `truncated`."""
    num_procs: int = 1
    """Processes (one per GPU where there are several); the records are split between them."""
    batch_size: int = 8
    """Records per forward pass (sorted by length, so rows of a batch are close in length)."""
    format: str = "auto"
    system_prompt: str | None = None
    dtype: str = "auto"
    """Compute precision: auto (bf16 on a GPU that has it, else fp32), fp32, bf16 or fp16."""

    def check(self) -> None:
        """Raise ScoreError for the first problem."""
        if self.mode not in MODES:
            raise ScoreError(f"--mode: '{self.mode}' is not one of {', '.join(MODES)}")
        if self.format not in DATA_FORMATS:
            raise ScoreError(f"--format: '{self.format}' is not one of {', '.join(DATA_FORMATS)}")
        for name, value, low in (("--top", self.top, 0), ("--max-length", self.max_length, 8),
                                 ("--num-procs", self.num_procs, 1), ("--batch-size", self.batch_size, 1)):
            if value < low:
                raise ScoreError(f"{name}: {value} must be at least {low}")
        if not self.out.parent.is_dir():
            raise ScoreError(f"--out {self.out}: folder '{self.out.parent}' does not exist; create it first")
        check_outside_inputs(self.out, self.data)


def check_outside_inputs(out: Path, data: list[str]) -> None:
    """The score file must not be, or lie inside, an input: it would replace the data or be read as data."""
    target = out.expanduser().resolve()
    for spec in data:
        if spec.startswith("builtin:"):
            continue
        src = Path(spec).expanduser().resolve()
        if target == src or (src.is_dir() and src in target.parents):
            raise ScoreError(f"--out {out}: lies inside the input '{spec}'; write the score file somewhere else")
