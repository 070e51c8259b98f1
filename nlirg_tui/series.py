"""A whole-history time series in bounded memory, for drawing a million-step run without a million points.

Points arrive in buckets of `stride` samples, each stored as its mean. When the store is full, neighbouring
points merge pairwise and the stride doubles, so the curve always spans the whole run in at most `capacity`
points and appending stays O(1) amortised.
"""

from __future__ import annotations

import math


class BoundedSeries:
    """(x, y) points, downsampled by merging as the history grows; `capacity` bounds the memory."""

    def __init__(self, capacity: int = 1024):
        if capacity < 2 or capacity % 2:
            raise ValueError("capacity must be an even number >= 2")
        self.capacity = capacity
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.stride = 1
        self.count = 0
        """Every point ever appended (the history length, not the memory used)."""
        self.last: float | None = None
        self._bucket_x = 0.0
        self._bucket_sum = 0.0
        self._bucket_n = 0

    def append(self, x: float, y: float | None) -> None:
        if y is None or not math.isfinite(y):
            return  # a skipped step has no value to draw; JSON sends it as null
        self.count += 1
        self.last = y
        self._bucket_x = x
        self._bucket_sum += y
        self._bucket_n += 1
        if self._bucket_n < self.stride:
            return
        self._push(self._bucket_x, self._bucket_sum / self._bucket_n)
        self._bucket_sum, self._bucket_n = 0.0, 0

    def _push(self, x: float, y: float) -> None:
        if len(self.xs) >= self.capacity:
            self.xs = self.xs[1::2]
            self.ys = [(a + b) / 2 for a, b in zip(self.ys[0::2], self.ys[1::2], strict=True)]
            self.stride *= 2
        self.xs.append(x)
        self.ys.append(y)

    def points(self) -> tuple[list[float], list[float]]:
        """Stored points plus the partly filled bucket, so the newest value is always drawn."""
        if self._bucket_n:
            return [*self.xs, self._bucket_x], [*self.ys, self._bucket_sum / self._bucket_n]
        return list(self.xs), list(self.ys)

    def __len__(self) -> int:
        return len(self.xs) + (1 if self._bucket_n else 0)


def resample(xs: list[float], ys: list[float], width: int) -> tuple[list[float], list[float]]:
    """At most `width` points (bucket means) for drawing: a plot never gets more points than it has cells."""
    n = len(xs)
    if n <= width or width <= 0:
        return xs, ys
    out_x, out_y = [], []
    for i in range(width):
        lo, hi = i * n // width, (i + 1) * n // width
        out_x.append(xs[hi - 1])
        out_y.append(sum(ys[lo:hi]) / (hi - lo))
    return out_x, out_y


def smooth(ys: list[float], alpha: float = 0.1) -> list[float]:
    """Exponential moving average (as TensorBoard's smoothing slider, debiased at the start)."""
    out, avg, weight = [], 0.0, 0.0
    for y in ys:
        avg = (1 - alpha) * avg + alpha * y
        weight = (1 - alpha) * weight + alpha
        out.append(avg / weight)
    return out
