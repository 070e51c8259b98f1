"""The token-loss axis (issue 14, item 12): the histogram's ticks fall on the zone bounds and round losses, not
on odd bin edges, in the Zones pane (and the Overview, which draws the same histogram)."""

from __future__ import annotations

import pytest

from nlirg_tui.app import NlirgApp
from nlirg_tui.axis import fit_ticks, loss_ticks
from nlirg_tui.widgets.plot import SeriesPlot
from tests.tui.conftest import axis_labels, shown, until

pytestmark = pytest.mark.anyio

BOUNDS = (1.45, 6.6, 15.0)


def test_loss_ticks_are_the_zone_bounds_then_round_losses():
    ticks = loss_ticks(BOUNDS, 20.5)
    assert ticks == [(1.45, "1.45"), (6.6, "6.6"), (15.0, "15"), (0.0, "0"), (5.0, "5"), (10.0, "10"),
                     (20.0, "20")]  # 15 is a bound already: once
    assert fit_ticks(ticks, 0.0, 20.5, 110) == ([0.0, 1.45, 5.0, 6.6, 10.0, 15.0, 20.0],
                                                ["0", "1.45", "5", "6.6", "10", "15", "20"])
    xs, labels = fit_ticks(ticks, 0.0, 20.5, 24)  # narrow: the bounds stay, round losses that would touch go
    assert {"1.45", "6.6", "15"} <= set(labels) and "0" not in labels
    cells = [x * 24 / 20.5 for x in xs]
    assert all(b - a >= (len(la) + len(lb)) / 2 + 1
               for a, b, la, lb in zip(cells, cells[1:], labels, labels[1:], strict=False))


@pytest.mark.parametrize("width", [80, 160])
async def test_zones_histogram_ticks_fall_on_bounds_and_round_losses(fixture_run, width):
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(width, 40)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.link_mode == "replay", "the replay")
        await pilot.press("2")  # Zones
        plot = screen.query_one("#zones-hist", SeriesPlot)
        await until(pilot, lambda: plot._spec is not None and "└" in shown(plot), "the histogram drawn")
        labels = axis_labels(plot)
        assert {"1.45", "6.6", "15"} <= set(labels) and {"5", "10", "20"} <= set(labels)
        assert set(labels) <= {"0", "1.45", "5", "6.6", "10", "15", "20"}  # no bin edge such as 0.25


