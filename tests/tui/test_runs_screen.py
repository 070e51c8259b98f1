"""The Runs screen (home) against odd folders under its root: it lists what it can and says what it skipped."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.runs import RunsScreen
from tests.helpers import write_odd_experiments
from tests.tui.conftest import shown, until

pytestmark = pytest.mark.anyio


async def test_an_unreadable_experiment_is_named_and_the_rest_listed(tmp_path):
    root = tmp_path / "runs"
    write_odd_experiments(root)
    app = NlirgApp(root=root)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen, "the Runs screen")
        table = screen.query_one(DataTable)
        assert [str(table.get_row_at(r)[1]).strip() for r in range(table.row_count)] == [
            "solo-20260101-000000", "▸ trimmed", "└ plain-r0"]
        problems = screen.query_one("#runs-unreadable", Static)
        text = " ".join(line.strip() for line in shown(problems).splitlines())  # the lines as the screen wraps them
        assert problems.display and text.count("skipped, not a readable experiment") == 2
        assert f"{root / 'binary' / 'experiment.json'}: skipped" in text
        screen.action_refresh()  # the 2 s timer's refresh: the same, no traceback
        await pilot.pause()
        assert table.row_count == 3 and problems.display
