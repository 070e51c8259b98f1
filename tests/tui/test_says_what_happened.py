"""The workbench says what happened: the trainer's own log lines in the Log pane, the LR it trains at in the
header, the live lr_scale in the LR dialog; the Runs screen starts runs under its root and asks before the demo."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Input

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.dialogs import Choice, ValueDialog
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.screens.runs import RunsScreen
from nlirg_tui.widgets.log import LogPane
from tests.tui.conftest import WAIT_S, start_trainer, stop_trainer, until, write_data
from trainer_core.config import build_config, save_config
from trainer_core.live.launch import start_detached
from trainer_core.live.processes import pid_alive
from trainer_core.live.rundir import checkpoint_dirs, read_json

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


async def test_log_pane_shows_the_trainers_log_lines_and_the_header_its_lr(live_run):
    app = NlirgApp(run_dir=live_run)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the Run screen")
        await until(pilot, lambda: screen.state.step >= 2, "two steps")
        await pilot.press("6")
        pane = screen.query_one(LogPane)
        await until(pilot, lambda: any("trainable of" in str(line.text) for line in pane.lines),
                    "trainer.log's parameter-count line in the Log pane")
        header = str(screen.query_one("#run-header").render())
        assert " running " in header and " lr " in header
        await pilot.press("l")
        dialog = await until(pilot, lambda: isinstance(app.screen, ValueDialog) and app.screen, "the LR dialog")
        assert dialog.query_one(Input).value == "1"
        await pilot.press("ctrl+u", *"0.5", "enter")
        await until(pilot, lambda: screen.state.lr_scale == 0.5, "the applied lr_scale")
        await until(pilot, lambda: "×0.5" in str(screen.query_one("#run-header").render()), "×0.5 in the header")
        await pilot.press("l")
        dialog = await until(pilot, lambda: isinstance(app.screen, ValueDialog) and app.screen, "the LR dialog")
        assert dialog.query_one(Input).value == "0.5"  # what the run uses now, not 1.0
        await pilot.press("escape")


async def test_attaching_at_once_to_a_resumed_run_follows_the_new_trainer(tmp_path):
    """`nlirg train --resume RUN --detach; nlirg attach RUN`: the old `end` in events.jsonl must not end the view."""
    run_dir = start_trainer(tmp_path, ["training.max_steps=3"])
    await_exit(run_dir)
    cfg = build_config(run_dir / "config.yaml")
    cfg.training.max_steps = 100000
    save_config(cfg, run_dir / "config.yaml")
    start_detached(run_dir, checkpoint_dirs(run_dir)[-1])  # what `nlirg train --resume RUN --detach` does
    app = NlirgApp(run_dir=run_dir)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the Run screen")
            await until(pilot, lambda: screen.link_mode == "live" and screen.state.step > 3, "the resumed trainer live")
            assert screen.state.is_live
            await until(pilot, lambda: " running " in str(screen.query_one("#run-header").render()),
                        "the header redrawn: running")
    finally:
        stop_trainer(run_dir)


def await_exit(run_dir: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while (read_json(run_dir / "trainer.json") or {}).get("status") != "completed" and time.monotonic() < deadline:
        time.sleep(0.2)
    pid = read_json(run_dir / "trainer.json")["pid"]
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


async def test_enter_on_the_runs_screen_opens_the_run(fixture_run):
    app = NlirgApp(root=fixture_run.parent)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs, "the run listed")
        await pilot.press("enter")
        screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the Run screen")
        assert screen.run_dir == fixture_run.resolve()


async def test_runs_screen_starts_a_config_under_its_root_and_asks_before_the_demo(tmp_path, monkeypatch):
    root = tmp_path / "store"
    project = tmp_path / "project"
    project.mkdir()
    write_data(project / "d.jsonl")
    cfg = project / "mine.yaml"
    cfg.write_text("model: {path: builtin:tiny}\ndata: {train: d.jsonl}\nlora: {enabled: false}\n"
                   "training: {batch_size: 2, max_steps: 100000, save_every: 0}\noutput: {root: elsewhere}\n")
    monkeypatch.chdir(tmp_path)
    app = NlirgApp(root=root)
    new_dir = None
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen), "the Runs screen")
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, Choice), "the demo question")
            assert "15 minutes on a CPU" in app.screen.question
            await pilot.press("enter")  # the default is No
            await until(pilot, lambda: isinstance(app.screen, RunsScreen), "back, nothing started")
            assert not root.exists() or not any(root.iterdir())
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, ValueDialog), "the config question")
            await pilot.press(*str(cfg.relative_to(tmp_path)), "enter")
            screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the new run")
            new_dir = Path(screen.run_dir)
        assert new_dir.parent == root.resolve()  # the workbench's root, not the config's output.root
        assert not (tmp_path / "elsewhere").exists()
    finally:
        if new_dir is not None:
            stop_trainer(new_dir)
