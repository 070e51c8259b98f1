"""Answer metrics of a run (eval events of kind `generation`) in the store and the Loss pane, and the arms' loss
bands of the Experiment screen, from fixed events."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from nlirg_tui.app import NlirgApp
from nlirg_tui.experiment_curves import RunCurve, arm_band
from nlirg_tui.panes import PANE_KEY
from nlirg_tui.state import RunState
from nlirg_tui.widgets.generation import GenerationPanel
from nlirg_tui.widgets.loss import LossPane
from nlirg_tui.widgets.plot import SeriesPlot
from tests.tui.conftest import until
from tests.tui.fixture_run import write_fixture_run


def _generation(seq: int, step: int, accuracy: float, repetition: float) -> dict:
    return {"v": 1, "type": "eval", "seq": seq, "ts": 0.0, "kind": "generation", "step": step, "epoch": 0.1,
            "domain_accuracy": accuracy, "domain_exact_match": 0.0, "repetition_3gram": repetition,
            "distinct_2": 0.8, "json_valid_rate": None, "hit_limit_rate": 0.25, "items": 4, "tokens_per_s": 50.0,
            "examples": [{"where": "d.jsonl:1", "prompt": "q", "output": "a", "reference": "a"}]}


def test_the_store_keeps_generation_curves_apart_from_the_eval_loss():
    state = RunState()
    state.ingest([_generation(0, 0, 0.25, 0.4), _generation(1, 10, 0.5, 0.1),
                  {"v": 1, "type": "eval", "seq": 2, "step": 10, "eval_loss": 2.5}])
    gen = state.generation
    assert gen.curves["domain_accuracy"].points() == ([0, 10], [0.25, 0.5])
    assert gen.curves["json_valid_rate"].points() == ([], [])  # null values are not points
    assert gen.first["step"] == 0 and gen.latest["step"] == 10 and gen.examples[0]["output"] == "a"
    assert state.eval_loss.points() == ([10], [2.5])  # the loss curve gets the loss event only
    assert any("accuracy 50%" in line for line in state.log)


@pytest.mark.anyio
async def test_the_loss_pane_shows_generation_metrics_when_there_are_some(tmp_path):
    run_dir = write_fixture_run(tmp_path / "runs")
    plain = NlirgApp(run_dir=run_dir)
    async with plain.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: plain.screen.link_mode == "replay", "the replay")
        await pilot.press(PANE_KEY["loss"])  # a wide terminal opens on the Overview: the Loss pane draws on show
        loss_plot = plain.screen.query_one(LossPane).query_one("#loss-plot", SeriesPlot)
        await until(pilot, lambda: loss_plot._spec is not None and loss_plot._spec.lines[0].xs, "the Loss pane drawn")
        assert not plain.screen.query_one(GenerationPanel).display  # no generation events: hidden
    events = run_dir / "events.jsonl"
    seq = len(events.read_text(encoding="utf-8").splitlines())
    with events.open("a", encoding="utf-8") as fh:
        for i, (step, acc, rep) in enumerate(((20, 0.25, 0.4), (40, 0.5, 0.1))):
            fh.write(json.dumps(_generation(seq + i, step, acc, rep)) + "\n")
    app = NlirgApp(run_dir=run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.screen.state.generation.seen, "the generation events")
        await pilot.press(PANE_KEY["loss"])  # a wide terminal opens on the Overview
        panel = app.screen.query_one(GenerationPanel)
        await until(pilot, lambda: panel.display, "the generation panel")
        console = Console(width=60, record=True)
        console.print(panel.query_one("#gen-table").content)  # the table the pane shows, as text
        table = console.export_text()
        assert "accuracy" in table and "0.250" in table and "0.500" in table and "+0.250" in table
        assert "-0.300" in table  # repetition went from 0.4 to 0.1
        plot = panel.query_one("#gen-plot", SeriesPlot)
        assert [line.label for line in plot._spec.lines] == ["accuracy", "repetition", "distinct-2", "JSON valid"]
        drawn, state = plot._spec, app.screen.state
        state.ingest([{"v": 1, "type": "step", "seq": seq + 2, "step": 41, "loss": 1.0}])
        app.screen.query_one(LossPane).update_from(state)  # a step: the answers are the same ones
        assert plot._spec is drawn
        state.ingest([_generation(seq + 3, 60, 0.75, 0.1)])
        app.screen.query_one(LossPane).update_from(state)
        assert plot._spec is not drawn and plot._spec.lines[0].ys[-1] == 0.75


def _events(path: Path, losses: list[float]) -> Path:
    path.write_text("".join(json.dumps({"type": "step", "step": i + 1, "total_steps": len(losses), "loss": x}) + "\n"
                            for i, x in enumerate(losses)), encoding="utf-8")
    return path


def test_arm_band_is_the_mean_and_std_over_repeats(tmp_path):
    a = RunCurve(_events(tmp_path / "a.jsonl", [3.0, 2.0, 1.0]))
    b = RunCurve(_events(tmp_path / "b.jsonl", [5.0, 2.0]))  # still training: one step fewer
    for curve in (a, b):
        curve.update()
    band = arm_band([a, b])
    assert band.xs == [1.0, 2.0, 3.0] and band.mean == [4.0, 2.0, 1.0] and band.runs == 2
    assert band.high[0] - band.mean[0] == pytest.approx(math.sqrt(2))  # sample std of 3 and 5
    assert band.low[2] == band.high[2] == 1.0  # one run reached step 3: no spread to show
    with (tmp_path / "b.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": "step", "step": 3, "total_steps": 3, "loss": 3.0}) + "\n{\"type\": \"st")
    b.update()  # reads the new line, leaves the torn one for later
    assert arm_band([a, b]).mean == [4.0, 2.0, 2.0]


def test_a_run_started_again_drops_the_dead_attempts_points(tmp_path):
    """An experiment run deleted and started again writes a new events.jsonl at the same path."""
    path = tmp_path / "events.jsonl"
    curve = RunCurve(_events(path, [9.0] * 6))
    curve.update()
    path.unlink()
    _events(path, [1.0, 2.0])  # shorter than what was read
    curve.update()
    assert curve.means() == {0: 1.0, 1: 2.0}
    _events(tmp_path / "new.jsonl", [3.0] * 8)
    (tmp_path / "new.jsonl").replace(path)  # another file, longer than what was read
    curve.update()
    assert curve.means() == {b: 3.0 for b in range(8)}
