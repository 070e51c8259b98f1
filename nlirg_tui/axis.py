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
