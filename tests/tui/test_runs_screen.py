"""The Runs screen (home): against odd folders under its root it lists what it can and says what it skipped; it
reads the folders off the UI thread, and not while another screen covers it."""

from __future__ import annotations

import json
import threading

import pytest
from textual.screen import Screen
from textual.widgets import DataTable, Static

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens import runs
from nlirg_tui.screens.runs import RunsScreen
from tests.helpers import write_odd_experiments
from tests.tui.conftest import until

pytestmark = pytest.mark.anyio


async def test_an_unreadable_experiment_is_named_and_the_rest_listed(tmp_path):
    root = tmp_path / "runs"
    write_odd_experiments(root)
    app = NlirgApp(root=root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen, "the Runs screen")
        table = screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count, "the first scan (a worker thread) listed")
        assert [str(table.get_row_at(r)[1]).strip() for r in range(table.row_count)] == [
            "solo-20260101-000000", "▸ trimmed", "└ plain-r0"]
        problems = screen.query_one("#runs-unreadable", Static)
        text = str(problems.render())  # the text it shows (wrapped lines depend on the temp path's length)
        assert problems.display and text.count("skipped, not a readable experiment") == 2
        assert f"{root / 'binary' / 'experiment.json'}: skipped" in text
        first = screen.scan
        screen.action_refresh()  # the 2 s timer's refresh: the same, no traceback
        await until(pilot, lambda: screen.scan is not first, "a second refresh")
        assert table.row_count == 3 and problems.display


def _run_with_speed(root, name: str, tokens_per_s: float) -> None:
    run = root / name
    run.mkdir(parents=True)
    (run / "trainer.json").write_text(json.dumps({"name": name, "status": "completed", "started": 1.0}))
    (run / "events.jsonl").write_text(json.dumps({"type": "step", "step": 3, "total_steps": 9, "loss": 2.5,
                                                  "tokens_per_s": tokens_per_s}) + "\n")


async def test_runs_are_read_off_the_ui_thread_and_not_while_covered(tmp_path, monkeypatch):
    monkeypatch.setattr(RunsScreen, "POLL_S", 0.2)  # ticks a test can wait for
    readers: list[threading.Thread] = []
    find_runs = runs.find_runs
    monkeypatch.setattr(runs, "find_runs", lambda root: readers.append(threading.current_thread()) or find_runs(root))
    root = tmp_path / "runs"
    _run_with_speed(root, "alpha-20260101-000000", 1234.4)
    app = NlirgApp(root=root)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows and app.screen,
                             "the run listed")
        table = screen.query_one(DataTable)
        assert [str(c) for c in table.get_row_at(0)][3:] == ["3/9", "2.5000", "1,234"]
        assert readers and threading.main_thread() not in readers
        app.push_screen(Screen())  # a run's view over it
        await pilot.pause()
        reads = len(readers)
        _run_with_speed(root, "beta-20260101-000000", 99.0)
        await pilot.pause(1.0)  # ~5 ticks
        assert len(readers) == reads and table.row_count == 1
        app.pop_screen()
        await until(pilot, lambda: table.row_count == 2, "the new run, read on return")
