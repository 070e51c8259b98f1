"""Every steering key and dialog of the Run screen, against a real detached trainer on builtin:tiny."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
from textual.widgets import Input

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.dialogs import Choice, ValueDialog
from nlirg_tui.screens.nlirg_dialog import NlirgDialog
from nlirg_tui.screens.relaunch_dialog import RelaunchDialog
from nlirg_tui.screens.relaunching import RelaunchProgress
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.widgets.config_editor import ConfigPane
from nlirg_tui.widgets.inspector import InspectorPane, TokenView, sample_key
from nlirg_tui.widgets.loss import LossPane
from tests.tui.conftest import WAIT_S, acks_of, attach, start_trainer, stop_trainer, until
from trainer_core.live.events import read_events
from trainer_core.live.processes import pid_alive
from trainer_core.live.rundir import read_json

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def header(screen: RunScreen) -> str:
    return str(screen.query_one("#run-header").render())


async def test_pause_resume_save_and_palette(live_run):
    seen: list = []
    app = NlirgApp(run_dir=live_run)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await attach(pilot, app)
        await pilot.press("p")
        ack = (await until(pilot, lambda: acks_of(seen, "pause"), "the pause ack"))[0]
        assert ack["ok"] and isinstance(ack["applied_at_step"], int)
        await until(pilot, lambda: screen.state.status == "paused", "status paused")
        await until(pilot, lambda: f"pause: ok at step {ack['applied_at_step']}" in header(screen), "the ack shown")
        paused_at = screen.state.step
        await pilot.press("s")
        save = (await until(pilot, lambda: acks_of(seen, "save"), "the save ack"))[0]
        assert save["ok"] and save["applied_at_step"] == paused_at  # a paused run applies it where it stands
        await until(pilot, lambda: any("checkpoint at step" in line for line in screen.state.log), "the checkpoint")
        await pilot.press("p")
        await until(pilot, lambda: acks_of(seen, "resume"), "the resume ack")
        await until(pilot, lambda: screen.state.status == "running", "status running")
        # The command palette has the same steering entries.
        await pilot.press("ctrl+p")
        await pilot.press(*"pause")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: len(acks_of(seen, "pause")) == 2, "a pause from the palette")
        await until(pilot, lambda: screen.state.status == "paused", "paused again")
    commands = [e["name"] for e in read_events(live_run / "events.jsonl") if e["type"] == "command"]
    assert commands[:4] == ["pause", "save", "resume", "pause"]


async def test_lr_and_nlirg_dialogs(live_run):
    seen: list = []
    app = NlirgApp(run_dir=live_run)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await attach(pilot, app)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ValueDialog), "the LR dialog")
        await pilot.press("ctrl+u", *"abc", "enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen), "the dialog closed")
        await pilot.pause(0.3)
        assert not acks_of(seen, "set")  # nothing sent for a bad value
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ValueDialog), "the LR dialog again")
        await pilot.press("ctrl+u", *"0.5", "enter")
        ack = (await until(pilot, lambda: acks_of(seen, "set"), "the lr_scale ack"))[0]
        assert ack["ok"]
        await until(pilot, lambda: any("lr_scale=0.5" in line and "applied at step" in line
                                       for line in screen.state.log), "the command in the log")
        # An absolute LR in scientific form becomes the scale that gives it now; the header shows the LR in one
        # short format, with the scale once a step has trained at it.
        half = ack["applied_at_step"]
        await until(pilot, lambda: screen.state.step > half and re.search(r"lr \d(\.\d+)?e-\d+ ×0\.5 ",
                                                                          header(screen)), "the header at ×0.5")
        target = screen.state.lr.last / 3
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ValueDialog), "the LR dialog for an absolute LR")
        await pilot.press("ctrl+u", *f"{target:.3e}", "enter")
        ack = (await until(pilot, lambda: len(acks_of(seen, "set")) == 2 and acks_of(seen, "set")[1], "its ack"))
        assert ack["ok"]
        await until(pilot, lambda: screen.state.step > ack["applied_at_step"], "a step at the LR asked for")
        assert screen.state.lr.last == pytest.approx(target, rel=0.2)  # the schedule moves on from there
        assert 0.1 < screen.state.lr_scale < 0.25  # 0.5 / 3, as a scale of the schedule

        await pilot.press("n")
        dialog = await until(pilot, lambda: isinstance(app.screen, NlirgDialog) and app.screen, "the NLIRG dialog")
        dialog.query_one("#loss_deadline", Input).value = "1.0"
        await pilot.pause(0.2)
        assert "loss_deadline" in str(dialog.query_one("#nlirg-error").render())
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert app.screen is dialog  # refused: still open, nothing sent
        dialog.query_one("#loss_deadline", Input).value = "6.95"
        dialog.query_one("#k", Input).value = "2.5"
        await pilot.pause(0.2)
        assert dialog.changes() == {"nlirg.k": 2.5}
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(acks_of(seen, "set")) == 3, "the NLIRG ack")
        assert acks_of(seen, "set")[2]["ok"]
        await until(pilot, lambda: screen.state.config["nlirg"]["k"] == 2.5, "the new k in the run's config")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NlirgDialog), "the NLIRG dialog again")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunScreen), "cancelled")
    assert "k: 2.5" in (live_run / "config.yaml").read_text()


async def test_inspector_export_tabs_and_toggles(live_run):
    app = NlirgApp(run_dir=live_run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attach(pilot, app)
        await until(pilot, lambda: len(screen.state.flagged) >= 2, "two flagged samples")
        for key, pane in zip("0123456", ("overview", "config", "zones", "loss", "memory", "inspector", "log"),
                             strict=True):
            await pilot.press(key)
            assert screen.query_one("#panes").active == pane
            if pane == "config":
                await pilot.press("escape")  # out of the editor, where the next digit would be text
        await pilot.press("5")
        inspector = screen.query_one(InspectorPane)
        # At least one zeroed token: with the template's structural tokens protected (nlirg.protect_special_tokens),
        # a shared run that has learnt its data may flag no sample with two any more (`]` below allows for one).
        await until(pilot, lambda: len(inspector.samples) >= 2 and inspector.samples[0]["zeroed_tokens"] >= 1,
                    "the flagged table filled, its worst sample with a zeroed token")
        worst = inspector.samples
        assert worst[0]["zeroed_tokens"] >= worst[-1]["zeroed_tokens"]  # worst first
        table = inspector.query_one("#flagged-table")
        table.focus()
        # Mark two samples. The live list reorders as samples get worse, and the cursor follows the sample it is
        # on (not the row), so "space, down, space" may land on the one just marked: pick an unmarked row each time.
        while len(inspector.marked) < 2:
            unmarked = (i for i, s in enumerate(inspector.samples) if sample_key(s) not in inspector.marked)
            table.move_cursor(row=next(unmarked))
            await pilot.pause()
            await pilot.press("space")
        table.move_cursor(row=0)  # show the worst one
        await pilot.pause()
        view = screen.query_one(TokenView)
        view.focus()
        await pilot.pause()
        assert screen.focused is view
        first = view.cursor
        assert view.sample["zones"][first] == 3  # the cursor starts on a zeroed token
        await pilot.press("right")
        assert view.cursor > first and view.sample["zones"][view.cursor] is not None  # the next target token
        await pilot.press("[")
        assert view.cursor == first  # back to the zeroed token before it
        await pilot.press("]")
        # The next zeroed token of the sample on show (live flagged events can swap in a sample with one only;
        # then `]` stays and says so).
        later = [i for i, zone in enumerate(view.sample["zones"]) if zone == 3 and i > first]
        assert view.cursor == (later[0] if later else first)
        assert "loss" in str(inspector.query_one("#token-detail").render())
        await pilot.press("e")
        lines = (live_run / "review.jsonl").read_text().splitlines()
        assert len(lines) == 2
        record = json.loads(lines[0])
        assert record["source"].endswith("train.jsonl") and isinstance(record["line"], int)
        assert record["zeroed"] and record["zeroed"][0]["loss"] >= 6.95
        await pilot.press("3")
        loss = screen.query_one(LossPane)
        await pilot.press("m", "g")
        assert loss.smoothing and loss.log_scale
        await pilot.press("m", "g")
        assert not loss.smoothing and not loss.log_scale


async def test_quit_asks_and_leaves_the_run_going(live_run):
    app = NlirgApp(run_dir=live_run)
    async with app.run_test(size=(80, 24)) as pilot:
        await attach(pilot, app)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Choice), "the quit question")
        await pilot.press("escape")  # cancel
        await until(pilot, lambda: isinstance(app.screen, RunScreen), "back on the run")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, Choice), "the quit question again")
        await pilot.press("enter")  # the default: leave it running
        await until(pilot, lambda: app.return_code is not None or not app.is_running, "the app to exit")
    pid = read_json(live_run / "trainer.json")["pid"]
    assert pid_alive(pid)
    assert read_json(live_run / "trainer.json")["status"] == "running"


async def test_stop_key_and_quit_with_stop(tmp_path):
    run_dir = start_trainer(tmp_path)
    try:
        seen: list = []
        app = NlirgApp(run_dir=run_dir)
        async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
            screen = await attach(pilot, app)
            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, Choice), "the stop confirmation")
            await pilot.press("enter")  # default is No
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "no stop")
            assert not acks_of(seen, "stop")
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, Choice), "the quit question")
            await pilot.press("tab", "enter")  # "Stop the run"
            await until(pilot, lambda: not app.is_running, "the app to exit")
        assert screen.state.name
        pid = read_json(run_dir / "trainer.json")["pid"]
        deadline = time.monotonic() + WAIT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert read_json(run_dir / "trainer.json")["status"] == "stopped"
        ends = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "end"]
        assert ends and ends[-1]["status"] == "stopped"
    finally:
        stop_trainer(run_dir)


async def test_relaunch_from_edited_config(tmp_path):
    run_dir = start_trainer(tmp_path)
    new_dir = None
    try:
        app = NlirgApp(run_dir=run_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await attach(pilot, app)
            await pilot.press("1")
            pane = app.screen.query_one(ConfigPane)
            editor = pane.query_one("#config-editor")
            editor.text = editor.text.replace("lr: 0.0002", "lr: 0.0001")
            await pilot.pause(0.5)
            assert not pane.problems
            pane.action_toggle_diff()
            await pilot.pause(0.1)
            assert "+  lr: 0.0001" in pane.diff_text
            editor.focus()
            await pilot.press("ctrl+r")
            await until(pilot, lambda: isinstance(app.screen, RelaunchDialog), "the relaunch dialog")
            await pilot.press("enter")  # resume weights from the checkpoint the stop writes
            # ~30 s of nothing while the run stopped: now a screen says what the relaunch waits for.
            pid = read_json(run_dir / "trainer.json")["pid"]
            progress = await until(pilot, lambda: isinstance(app.screen, RelaunchProgress) and app.screen,
                                   "the relaunch's progress")
            assert progress.phases[0] == f"stopping {run_dir.name} (pid {pid}): waiting for its checkpoint…"
            new_screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run_dir != run_dir
                                     and app.screen, "the new run's screen")
            new_dir = new_screen.run_dir
            await until(pilot, lambda: new_screen.link_mode == "live", "the new run live")
            await until(pilot, lambda: "resumed from" in (new_dir / "trainer.log").read_text(),
                        "the new trainer to resume the stopped run's checkpoint")
            await until(pilot, lambda: new_screen.state.lr.last is not None, "a step of the new run")
            # The edited LR is the LR it trains at (cosine over 100000 steps: still ~1.0 of the peak).
            assert new_screen.state.lr.last == pytest.approx(1e-4, rel=1e-3)
            await until(pilot, lambda: "lr 0.0002 -> 0.0001" in header(new_screen), "the change in the header")
        assert read_json(run_dir / "trainer.json")["status"] == "stopped"
        assert "lr: 0.0001" in (new_dir / "config.yaml").read_text()
    finally:
        stop_trainer(run_dir)
        if new_dir is not None:
            stop_trainer(new_dir)


async def test_a_dead_trainer_shows_a_banner_and_the_last_state(live_run):
    app = NlirgApp(run_dir=live_run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attach(pilot, app)
        os.kill(read_json(live_run / "trainer.json")["pid"], signal.SIGKILL)
        await until(pilot, lambda: screen.link_mode == "dead", "the link to report the trainer gone")
        banner = screen.query_one("#banner")
        assert banner.display and "not running" in str(banner.render())
        await until(pilot, lambda: " dead " in header(screen), "the header's one status: dead")
        assert "running" not in header(screen)
        step = screen.state.step
        assert step >= 2 and screen.state.loss.last is not None  # the last state stays on screen
        await pilot.press("p")
        await until(pilot, lambda: "refused" in screen.state.last_ack, "a local refusal")
