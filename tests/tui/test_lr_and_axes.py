"""Numbers a newcomer reads (issue 25): one short LR format with the live scale from the step it applies, whole
step ticks, short scientific LR labels, and an empty histogram's axis from 0, not -1..1. A real SeriesPlot in
a Pilot app; the store fed with protocol events."""

from __future__ import annotations

import re

import pytest
from textual.app import App, ComposeResult

from nlirg_tui.axis import short_sci, step_ticks
from nlirg_tui.lr_label import lr_label, scale_for_lr
from nlirg_tui.state import RunState
from nlirg_tui.widgets.plot import Line, PlotSpec, SeriesPlot
from tests.tui.conftest import shown

pytestmark = pytest.mark.anyio


def _step(step: int, lr: float) -> dict:
    return {"type": "step", "step": step, "total_steps": 100, "loss": 2.0, "lr": lr}


def test_the_lr_label_shows_the_scale_from_the_step_it_applies():
    state = RunState()
    state.ingest([_step(1, 0.00019999995), _step(2, 2e-4)])
    assert lr_label(state) == "2e-4"
    state.ingest([{"type": "command", "name": "set", "args": {"lr_scale": 0.5}, "applied_at_step": 2}])
    assert lr_label(state) == "2e-4 (×0.5 from step 3)"  # step 2's LR was the old one: not `2e-4 ×0.5`
    state.ingest([_step(3, 1e-4)])
    assert lr_label(state) == "1e-4 ×0.5"
    assert scale_for_lr(5e-5, state) == pytest.approx(0.25)  # the schedule now is 2e-4: 5e-5 is a quarter of it


def test_short_scientific_labels_and_whole_step_ticks():
    assert [short_sci(x) for x in (0.00019999995, 1.5e-5, 1e-3, 0.0)] == ["2e-4", "1.5e-5", "1e-3", "0"]
    assert step_ticks(1, 7, 72) == [1, 2, 3, 4, 5, 6, 7]
    assert step_ticks(0, 1000, 72) == [0, 200, 400, 600, 800, 1000]
    assert all(t == int(t) for t in step_ticks(3, 9, 20))


class PlotApp(App):
    def compose(self) -> ComposeResult:
        yield SeriesPlot()


def _left_labels(text: str) -> list[str]:
    """What stands left of the frame on each line: the y axis labels."""
    return [m.group(1) for line in text.splitlines() if (m := re.match(r"\s*([^\s┤│]+)[┤│]", line))]


async def test_lr_plot_reads_short_lr_labels_and_whole_steps_and_an_empty_histogram_starts_at_0():
    app = PlotApp()
    async with app.run_test(size=(60, 16)) as pilot:
        plot = app.query_one(SeriesPlot)
        steps = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        lrs = [0.00019999995 * (1 - i / 10) for i in range(7)]
        plot.show(PlotSpec("LR", [Line("lr", steps, lrs, "orange")], y_label=short_sci))
        await pilot.pause(0.2)
        text = shown(plot)
        lines = text.splitlines()
        bottom = max(i for i, line in enumerate(lines) if "└" in line)
        assert re.findall(r"\S+", lines[bottom + 1]) == ["1", "2", "3", "4", "5", "6", "7"]  # no 1.5, 2.25
        assert _left_labels(text) and all(re.fullmatch(r"\d(\.\d+)?e-\d+", label) for label in _left_labels(text))
        assert "0.000199" not in text
        plot.show(PlotSpec("Zones", bars=([0.5, 1.5, 2.5], [0.0, 0.0, 0.0])))
        await pilot.pause(0.2)
        labels = _left_labels(shown(plot))
        assert labels and "-1.00" not in shown(plot) and labels[-1] == "0" and labels[0] == "1"
