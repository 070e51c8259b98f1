"""The Experiment screen's refresh on an experiment folder as `nlirg ab` writes it (runs' events.jsonl and
eval.json written here, no training): the user's cursor and horizontal scroll survive a refresh, an unchanged
folder draws nothing, and a covered screen reads nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.screen import Screen
from textual.widgets import DataTable

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.experiment import ExperimentScreen
from nlirg_tui.screens.runs import RunsScreen
from tests.tui.conftest import TINY_LIVE, until, write_data
from trainer_core.config import build_config
from trainer_core.evaluate.commands import prepare_experiment
from trainer_core.evaluate.experiment import load_spec

pytestmark = pytest.mark.anyio


def _step(run_dir: Path, step: int, loss: float) -> None:
    with (run_dir / "events.jsonl").open("a") as fh:
        fh.write(json.dumps({"type": "step", "step": step, "total_steps": 8, "loss": loss}) + "\n")


def _evaluated(run_dir: Path, shift: float) -> None:
    metrics = {"eval_loss": 1.2345 + shift, "domain_accuracy": 0.25 + shift, "general_ppl": 12.5 + shift,
               "distinct_2": 0.5 + shift}
    (run_dir / "eval.json").write_text(json.dumps({"metrics": metrics}))


def _experiment(tmp: Path) -> Path:
    """plain,nlirg x 2: every run trained 4 of 8 steps and evaluated."""
    domain = tmp / "domain.jsonl"
    domain.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n", encoding="utf-8")
    cfg = build_config(None, [*TINY_LIVE, f"data.train={write_data(tmp / 'train.jsonl')}",
                              f"output.root={tmp / 'runs'}"])
    exp_dir, _ = prepare_experiment(cfg, "plain,nlirg", 2, [str(domain)], [], None, "nlirg ab (test)", "x", True)
    for n, slot in enumerate(load_spec(exp_dir)["runs"]):
        run_dir = exp_dir / slot["name"]
        run_dir.mkdir()
        (run_dir / "trainer.json").write_text(json.dumps({"name": slot["name"], "status": "completed"}))
        for step in range(1, 5):
            _step(run_dir, step, 3.0 - step / 4 + n / 10)
        _evaluated(run_dir, n / 100)
    return exp_dir


async def test_a_refresh_keeps_the_users_place_and_an_unchanged_folder_draws_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(ExperimentScreen, "POLL_S", 0.2)  # ticks a test can wait for
    exp_dir = _experiment(tmp_path)
    app = NlirgApp(root=tmp_path / "runs")
    async with app.run_test(size=(80, 30)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), "the Runs screen")
        app.push_screen(ExperimentScreen(exp_dir))
        screen = await until(pilot, lambda: isinstance(app.screen, ExperimentScreen) and app.screen.snapshot
                             and app.screen, "the experiment loaded")
        metrics, runs = screen.query_one("#experiment-metrics", DataTable), screen.query_one("#experiment-runs",
                                                                                               DataTable)
        plot = screen.query_one("#experiment-plot")
        metrics.move_cursor(row=2)
        runs.move_cursor(row=1)
        await pilot.pause()
        assert metrics.max_scroll_x > 10  # the difference column is past 80 columns
        metrics.scroll_to(x=10, animate=False)
        await pilot.pause()
        drawn, spec = screen.snapshot, plot._spec
        await pilot.pause(1.0)  # ~5 ticks over an unchanged folder
        assert screen.snapshot is drawn and plot._spec is spec

        _step(exp_dir / "nlirg-r1", 5, 1.5)  # a run goes on and is evaluated again
        _evaluated(exp_dir / "nlirg-r1", 0.5)
        await until(pilot, lambda: screen.snapshot is not drawn, "the change drawn")
        await pilot.pause()
        assert "5/8" in [str(c) for c in runs.get_row("nlirg-r1")]
        assert (metrics.cursor_row, metrics.scroll_x, runs.cursor_row) == (2, 10, 1)

        app.push_screen(Screen())  # covered (a run's view): no reading
        await pilot.pause()
        drawn = screen.snapshot
        _step(exp_dir / "nlirg-r1", 6, 1.4)
        await pilot.pause(1.0)
        assert screen.snapshot is drawn
        app.pop_screen()
        await until(pilot, lambda: screen.snapshot is not drawn, "the change read on return")
