"""The arms' loss curves of an experiment: each run's step loss read incrementally from its events.jsonl into
fixed-width step buckets, and per arm the mean over repeats with a ±1 std band. Memory is bounded by the number
of buckets, whatever the run length."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

BUCKETS = 400
"""Points per curve at most: steps are averaged in buckets of ceil(total_steps / BUCKETS)."""


@dataclass
class RunCurve:
    """One run's step losses in buckets; `update()` reads only what was appended since the last call."""

    path: Path
    width: int = 0
    """Steps per bucket, fixed from the first step event's total_steps."""
    sums: dict[int, float] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    offset: int = 0
    inode: int = 0
    """The file read so far: another file at the path (another inode, or shorter than what was read) starts the
    curve again."""

    def update(self) -> None:
        try:
            with self.path.open("rb") as fh:
                inode = os.fstat(fh.fileno()).st_ino
                if inode != self.inode or fh.seek(0, os.SEEK_END) < self.offset:
                    self.reset(inode)  # a run deleted and started again: a new events.jsonl
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # a torn last line waits for the next read
        self.offset += end
        for line in chunk[:end].splitlines():
            if b'"step"' in line:
                self._add(line)

    def reset(self, inode: int) -> None:
        """Forget the points read so far: the file they came from is gone."""
        self.width, self.offset, self.inode = 0, 0, inode
        self.sums.clear()
        self.counts.clear()

    def _add(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        loss, step = event.get("loss"), event.get("step")
        if event.get("type") != "step" or not isinstance(step, int) or not isinstance(loss, (int, float)):
            return
        if not self.width:
            self.width = max(1, math.ceil((event.get("total_steps") or step) / BUCKETS))
        bucket = (step - 1) // self.width
        self.sums[bucket] = self.sums.get(bucket, 0.0) + loss
        self.counts[bucket] = self.counts.get(bucket, 0) + 1

    def means(self) -> dict[int, float]:
        return {b: self.sums[b] / self.counts[b] for b in self.sums}


@dataclass
class Band:
    xs: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    runs: int


def arm_band(curves: list[RunCurve]) -> Band:
    """Mean over the runs that reached each bucket, and mean ± sample std where two or more did."""
    width = max((c.width for c in curves), default=1) or 1
    per_run = [c.means() for c in curves if c.width == width]  # equal configs give equal widths
    buckets = sorted({b for means in per_run for b in means})
    band = Band([], [], [], [], len(per_run))
    for b in buckets:
        values = [means[b] for means in per_run if b in means]
        m = sum(values) / len(values)
        s = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        band.xs.append(float((b + 1) * width))
        band.mean.append(m)
        band.low.append(m - s)
        band.high.append(m + s)
    return band
