"""Keys (issue 25): Esc then a digit in one burst is not Option+digit; arrows move between a dialog's choices."""

from __future__ import annotations

import pytest
from textual.app import App

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.dialogs import Choice, relaunch_dialog
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


class ChoiceApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.answers: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(relaunch_dialog("checkpoints/step-20"), self.answers.append)


@pytest.mark.parametrize(("keys", "answer"), [(("enter",), "resume"), (("right", "enter"), "fresh"),
                                              (("right", "right", "left", "enter"), "fresh")])
async def test_arrow_keys_move_between_a_dialogs_choices(keys, answer):
    """Right then Enter chose "resume" by surprise: the arrows did nothing, Enter took the default."""
    app = ChoiceApp()
    async with app.run_test() as pilot:
        await until(pilot, lambda: isinstance(app.screen, Choice), "the relaunch dialog")
        await pilot.press(*keys)
        await until(pilot, lambda: app.answers, "its answer")
        assert app.answers == [answer]
