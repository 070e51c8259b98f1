"""A dialog sends its command exactly once however the keys arrive (issue 14, item 9), counted in what one shared
real trainer on builtin:tiny applied; and digits typed in a dialog's input are text, not pane keys."""

from __future__ import annotations

import pytest
from textual import events
from textual.widgets import Input

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.dialogs import Choice, ValueDialog
from nlirg_tui.screens.nlirg_dialog import NlirgDialog
from tests.tui.conftest import acks_of, attach, until
from trainer_core.live.events import read_events

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def in_one_read(app, *keys: str) -> None:
    """Keys that arrive together (a slow SSH link delivers several in one read): none waits for the last one's
    effect, as `pilot.press` would."""
    for key in keys:
        app.post_message(events.Key(key, {"enter": "\r"}.get(key, key)))


async def settle(pilot) -> None:
    await pilot.pause(0.3)


async def test_a_dialog_sends_once_however_the_keys_arrive(shared_live_run):
    """The LR dialog once sent `lr_scale 2.0` and `21.0` for one Enter: two `l` in one read opened two dialogs
    (the action pushed its dialog from a worker, after both keys were handled), and each took an Enter."""
    seen: list = []
    app = NlirgApp(run_dir=shared_live_run)
    events_file = shared_live_run / "events.jsonl"
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await attach(pilot, app)
        panes = screen.query_one("#panes")
        pane = panes.active
        commands_before = sum(1 for e in read_events(events_file) if e["type"] == "command")

        in_one_read(app, "l", "l")
        dialog = await until(pilot, lambda: isinstance(app.screen, ValueDialog) and app.screen, "the LR dialog")
        await settle(pilot)
        assert app.screen is dialog and sum(isinstance(s, ValueDialog) for s in app.screen_stack) == 1
        await pilot.press("2")
        assert dialog.query_one(Input).value == "2" and panes.active == pane  # a digit is text here
        in_one_read(app, "enter", "enter")
        await until(pilot, lambda: app.screen is screen, "the LR dialog closed")

        in_one_read(app, "n", "n")
        nlirg = await until(pilot, lambda: isinstance(app.screen, NlirgDialog) and app.screen, "the NLIRG dialog")
        nlirg.query_one("#k", Input).focus()
        await settle(pilot)
        await pilot.press("2", ".", "5")
        assert nlirg.query_one("#k", Input).value == "2.5" and panes.active == pane
        in_one_read(app, "enter", "enter")
        await until(pilot, lambda: app.screen is screen, "the NLIRG dialog closed")

        in_one_read(app, "x", "x")
        await until(pilot, lambda: isinstance(app.screen, Choice), "the stop question")
        in_one_read(app, "enter", "enter")  # the default: No
        await until(pilot, lambda: app.screen is screen, "the stop question closed")
        await settle(pilot)
        assert app.screen is screen  # a second answer did not pop the Run screen as well

        await pilot.press("s")  # a marker: commands apply in order, so any second `set` came before this ack
        await until(pilot, lambda: acks_of(seen, "save"), "the save ack")
    commands = [e for e in read_events(events_file) if e["type"] == "command"][commands_before:]
    assert [(c["name"], c["args"]) for c in commands] == [
        ("set", {"lr_scale": 2.0}), ("set", {"nlirg.k": 2.5}), ("save", {})]
    assert len(acks_of(seen, "set")) == 2


async def test_nan_and_inf_never_leave_the_dialogs(shared_live_run):
    """`inf` in the LR dialog and `nan` in the NLIRG dialog are refused there with the trainer's own check (issue
    15): nothing is sent (the JSON encoder would refuse it), and the run's history shows no `set`."""
    seen: list = []
    app = NlirgApp(run_dir=shared_live_run)
    events_file = shared_live_run / "events.jsonl"
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await attach(pilot, app)
        commands_before = sum(1 for e in read_events(events_file) if e["type"] == "command")
        await pilot.press("l")
        dialog = await until(pilot, lambda: isinstance(app.screen, ValueDialog) and app.screen, "the LR dialog")
        dialog.query_one(Input).value = "inf"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is screen, "the LR dialog closed")

        await pilot.press("n")
        nlirg = await until(pilot, lambda: isinstance(app.screen, NlirgDialog) and app.screen, "the NLIRG dialog")
        nlirg.query_one("#k", Input).value = "nan"
        await settle(pilot)
        assert nlirg.changes() is None
        assert any("nlirg.k: nan is not a finite number" in problem for problem in nlirg.edited()[1])
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "the NLIRG dialog closed")

        await pilot.press("s")  # a marker: commands apply in order
        await until(pilot, lambda: acks_of(seen, "save"), "the save ack")
    commands = [e for e in read_events(events_file) if e["type"] == "command"][commands_before:]
    assert [(c["name"], c["args"]) for c in commands] == [("save", {})]
