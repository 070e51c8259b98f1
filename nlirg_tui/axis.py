"""Axis ticks a reader can use: a token-loss axis ticks the zone bounds and round losses, never odd bin edges
(plotext's own ticks split the data range evenly: 0.25, 1.25, 2.25, ...)."""

from __future__ import annotations

from collections.abc import Sequence

Tick = tuple[float, str]
Y_AXIS_CELLS = 8
"""Columns plotext spends left of the plot area (y labels and the frame); an estimate, it only spaces labels."""


def loss_ticks(bounds: Sequence[float], x_max: float, step: float = 5.0) -> list[Tick]:
    """The zone bounds first (they matter most), then multiples of `step` from 0 to `x_max`; `fit_ticks`
    drops the ones a narrow plot has no room for, lowest priority first."""
    ticks = [(b, f"{b:g}") for b in bounds if 0 <= b <= x_max]
    rounds = [i * step for i in range(int(x_max // step) + 1)]
    return ticks + [(x, f"{x:g}") for x in rounds if all(abs(x - b) > 1e-9 for b in bounds)]


def fit_ticks(ticks: Sequence[Tick], x_min: float, x_max: float, columns: int) -> tuple[list[float], list[str]]:
    """Keep ticks in priority order whose label does not touch a kept one at `columns` cells wide; sorted by x."""
    per_unit = max(columns, 1) / (x_max - x_min)
    kept: list[Tick] = []
    for x, label in ticks:
        if all(abs(x - kx) * per_unit >= (len(label) + len(klabel)) / 2 + 1 for kx, klabel in kept):
            kept.append((x, label))
    kept.sort()
    return [x for x, _ in kept], [label for _, label in kept]


def short_sci(value: float) -> str:
    """A short scientific label, one format for every LR: 2e-4, 1.5e-5, 1.23e-3 (0 is 0)."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def step_ticks(lo: float, hi: float, columns: int) -> list[float]:
    """Whole-number ticks from `lo` to `hi` (steps are counted, never fractional), a round stride apart
    (1, 2, 5, 10, 20, ...) with room for a label every ~8 cells."""
    first, last = int(lo), int(hi) + (0 if hi == int(hi) else 1)
    room = max(1, columns // 8)
    stride = _round_stride(max(1, -(-(last - first) // room)))
    start = -(-first // stride) * stride
    return [float(x) for x in range(start, last + 1, stride)] or [float(first)]


def _round_stride(n: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is >= n."""
    power = 1
    while True:
        for base in (1, 2, 5):
            if base * power >= n:
                return base * power
        power *= 10


def spread_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """`count` ticks from `lo` to `hi` (one when they are equal)."""
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / (count - 1) for i in range(count)]
