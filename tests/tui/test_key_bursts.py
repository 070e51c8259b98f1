"""Keys that arrive together (issue 25): Esc then a digit in one burst is not Option+digit."""

from __future__ import annotations

import pytest

from nlirg_tui.app import NlirgApp
from nlirg_tui.widgets.config_editor import ConfigEditor
from tests.tui.conftest import until

pytestmark = pytest.mark.anyio


async def test_esc_then_a_digit_in_one_burst_leaves_the_editor_and_shows_the_pane(fixture_run):
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.link_mode == "replay", "the replay")
        await pilot.press("1")
        editor = screen.query_one(ConfigEditor)
        await until(pilot, lambda: screen.focused is editor, "the Config editor")
        before = editor.text
        await pilot.press("alt+3")  # what the terminal's reader makes of ESC 3 read at once
        await until(pilot, lambda: screen.active_pane == "loss", "the Loss pane")
        assert editor.text == before  # the 3 was not typed into the config
