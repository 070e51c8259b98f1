"""Keys (issue 25): Esc then a digit in one burst is not Option+digit; arrows move between a dialog's choices;
keys typed before a dialog is drawn reach it."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.dialogs import ValueDialog, ask, early_key_target
from nlirg_tui.screens.relaunch_dialog import RelaunchDialog, ResumeOffer
from nlirg_tui.widgets.config_editor import ConfigEditor
from tests.tui.conftest import until, write_data
from trainer_core.config import config_from_dict

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
    def __init__(self, data: Path) -> None:
        super().__init__()
        self.data = data
        self.answers: list[str | None] = []

    def on_mount(self) -> None:
        cfg = config_from_dict({"model": {"path": "builtin:tiny"}, "data": {"train": [str(self.data)]}})
        self.push_screen(RelaunchDialog("Relaunch?", cfg, ResumeOffer("step-20", 20)),
                         lambda answer: self.answers.append(answer and ("resume" if answer.resume else "fresh")))


@pytest.mark.parametrize(("keys", "answer"), [(("enter",), "resume"), (("right", "enter"), "fresh"),
                                              (("right", "right", "left", "enter"), "resume")])
async def test_arrow_keys_move_the_weights_choice(keys, answer, tmp_path):
    """Right then Enter chose "resume" by surprise: the arrows did nothing, Enter took the default. Now the arrows
    move the marked choice itself (no wrap), and Enter starts with what is marked."""
    app = ChoiceApp(write_data(tmp_path / "train.jsonl"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: isinstance(app.screen, RelaunchDialog), "the relaunch dialog")
        await pilot.press(*keys)
        await until(pilot, lambda: app.answers, "its answer")
        assert app.answers == [answer]


class Asking(Screen):
    BINDINGS = [Binding("l", "ask", "ask"), Binding("0", "zero", "zero")]

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[str | None] = []
        self.zeros = 0

    def action_ask(self) -> None:
        ask(self, ValueDialog("LR scale", "1"), self.answers.append)

    def action_zero(self) -> None:
        self.zeros += 1


class AskingApp(App):
    """The one hook NlirgApp has for it (`early_key_target` in its `on_event`)."""

    def on_mount(self) -> None:
        self.push_screen(Asking())

    async def on_event(self, event: events.Event) -> None:
        dialog = early_key_target(self, event)
        if dialog is not None:
            dialog.type_ahead(event)
            return
        await super().on_event(event)


async def test_keys_typed_before_the_dialog_is_drawn_reach_it():
    """`l` then `0.5` Enter in one burst (a fast typist, a slow link): the keys after `l` went to the screen behind
    the dialog and were lost, and Enter answered with the value shown. `App.post_message` of key events sends them
    without waiting for the app in between (Textual's public API)."""
    app = AskingApp()
    async with app.run_test() as pilot:
        screen = app.screen
        for key, char in (("l", "l"), ("0", "0"), ("full_stop", "."), ("5", "5"), ("enter", "\r")):
            app.post_message(events.Key(key, char))
        await until(pilot, lambda: screen.answers, "the dialog's answer")
        assert screen.answers == ["0.5"] and screen.zeros == 0
        await pilot.press("l")  # typed after the dialog is drawn: the field, as before
        await until(pilot, lambda: isinstance(app.screen, ValueDialog), "the dialog again")
        await pilot.press("2", "enter")
        await until(pilot, lambda: len(screen.answers) == 2, "the second answer")
        assert screen.answers[1] == "2"
