"""The Experiment screen against real runs: the tiny `nlirg ab` experiment (grouped on the Runs screen, its arms'
curves, metric table and runs), and an experiment whose run is training now, one key from its live view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.experiment import ExperimentScreen
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.screens.runs import RunsScreen
from tests.tui.conftest import TINY_LIVE, stop_trainer, until, write_data
from trainer_core.config import build_config
from trainer_core.evaluate.commands import prepare_experiment
from trainer_core.evaluate.experiment import load_spec, run_config
from trainer_core.evaluate.report import mean_std
from trainer_core.live.events import read_events
from trainer_core.live.launch import prepare_run, start_detached
from trainer_core.live.rundir import read_json

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def _cells(table: DataTable, row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


async def test_the_experiment_screen_shows_arms_metrics_and_runs(tiny_experiment):
    exp = tiny_experiment
    app = NlirgApp(root=exp.work / "runs")
    async with app.run_test(size=(150, 44)) as pilot:
        runs = await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen, "the Runs screen")
        table = runs.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 5, "the experiment and its 4 runs")
        assert _cells(table, 0)[1] == f"▸ {exp.exp_dir.name}" and "complete" in _cells(table, 0)[2]
        assert [_cells(table, r)[1].strip() for r in range(1, 5)] == [
            "└ plain-r0", "└ nlirg-r0", "└ plain-r1", "└ nlirg-r1"]
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and app.screen,
                             "the Experiment screen")
        await until(pilot, lambda: screen.snapshot is not None, "the experiment loaded")
        metrics = screen.query_one("#experiment-metrics", DataTable)
        labels = [str(c.label) for c in metrics.columns.values()]
        assert labels[:5] == ["metric", "better", "base", "plain", "nlirg"] and labels[5] == "nlirg − plain (95% CI)"
        report = read_json(exp.exp_dir / "report.json")
        rows = {_cells(metrics, r)[0]: _cells(metrics, r) for r in range(metrics.row_count)}
        for key in ("eval_loss", "general_ppl_ratio", "repetition_3gram", "loss_fluctuation"):
            assert key in rows
        assert rows["eval_loss"][3] == mean_std(report["arms"]["plain"]["eval_loss"])
        assert rows["eval_loss"][5].startswith(f"{report['differences']['nlirg']['eval_loss']['diff']:+.4f} [")
        run_rows = screen.query_one("#experiment-runs", DataTable)
        assert [_cells(run_rows, r)[1] for r in range(4)] == ["plain-r0", "nlirg-r0", "plain-r1", "nlirg-r1"]
        assert {_cells(run_rows, r)[3] for r in range(4)} == {"evaluated"}
        spec = screen.query_one("#experiment-plot")._spec
        means = {line.label: line for line in spec.lines if line.label}
        assert set(means) == {"plain (mean of 2)", "nlirg (mean of 2)"}
        first = [_first_loss(exp.run_dir(f"plain-r{i}")) for i in range(2)]
        assert means["plain (mean of 2)"].ys[0] == pytest.approx(sum(first) / 2)
        assert len([line for line in spec.lines if not line.label]) == 4  # a ±1 std band per arm
        run_rows.focus()
        await pilot.press("down", "enter")
        run_screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the run's view")
        assert run_screen.run_dir == exp.run_dir("nlirg-r0")
        await pilot.press("q")  # a finished run: straight back to the experiment
        await until(pilot, lambda: app.screen is screen, "back on the Experiment screen")


def _first_loss(run_dir: Path) -> float:
    return next(e["loss"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "step" and e["step"] == 1)


def _live_experiment(tmp: Path) -> tuple[Path, Path]:
    """An experiment folder whose first run is training now (a real detached trainer)."""
    domain = tmp / "domain.jsonl"
    domain.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n", encoding="utf-8")
    data = write_data(tmp / "train.jsonl")
    cfg = build_config(None, [*TINY_LIVE, f"data.train={data}", f"output.root={tmp / 'runs'}"])
    exp_dir, _ = prepare_experiment(cfg, "plain,nlirg", 1, [str(domain)], [], None, "nlirg ab (test)", "live", True)
    slot = load_spec(exp_dir)["runs"][0]
    run_dir = exp_dir / slot["name"]
    prepare_run(run_config(load_spec(exp_dir)["config"], slot["arm"], slot["seed"], slot["name"], exp_dir),
                slot["name"], at=run_dir)
    start_detached(run_dir)
    return exp_dir, run_dir


async def test_the_run_training_now_is_one_key_away(tmp_path):
    exp_dir, run_dir = _live_experiment(tmp_path)
    try:
        app = NlirgApp(root=tmp_path / "runs")
        async with app.run_test(size=(150, 44)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen), "the Runs screen")
            app.push_screen(ExperimentScreen(exp_dir))
            screen = await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and app.screen, "it")
            await until(pilot, lambda: screen.snapshot is not None, "the experiment loaded")
            status = screen.query_one("#experiment-status")
            await until(pilot, lambda: "training now: plain-r0" in str(status.render()), "the live run named")
            rows = screen.query_one("#experiment-runs", DataTable)
            assert _cells(rows, 0)[0] == "▶" and _cells(rows, 1)[3] == "pending"
            await pilot.press("l")
            live = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the live view")
            assert live.run_dir == run_dir
            await until(pilot, lambda: live.link_mode == "live" and live.state.step >= 1, "a live link")
    finally:
        stop_trainer(run_dir)
