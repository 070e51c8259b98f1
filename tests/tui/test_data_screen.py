"""The Data screen against a real score file (`nlirg score` on builtin:tiny, planted faults) and a real finished
run: mark drop / keep, edit into the overlay, write a cleaned copy, relaunch on it; and from the Inspector."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, TextArea

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.data import DataScreen
from nlirg_tui.screens.record_editor import RecordEditor
from nlirg_tui.screens.relaunch_dialog import RelaunchDialog
from nlirg_tui.screens.relaunching import RelaunchProgress
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.widgets.inspector import InspectorPane
from nlirg_tui.widgets.record_view import RecordView
from tests.helpers import TINY, make_config, train_in_process
from tests.score_helpers import copy_scored
from tests.tui.conftest import WAIT_S, notes, start_trainer, stop_trainer, until
from trainer_core.config import build_config, save_config
from trainer_core.live.rundir import read_json

pytestmark = pytest.mark.anyio


async def _open(pilot, app: NlirgApp) -> DataScreen:
    return await until(pilot, lambda: isinstance(app.screen, DataScreen) and app.screen.rows and app.screen,
                       "the Data screen")


async def _go_to(pilot, screen: DataScreen, line: int) -> None:
    row = next(i for i, r in enumerate(screen.rows) if r.line == line)
    screen.query_one(DataTable).move_cursor(row=row)
    await pilot.pause()


async def test_mark_edit_and_write_a_cleaned_copy(tiny_scores, tmp_path):
    data, scores = copy_scored(*tiny_scores[:2], tmp_path)
    lines = tiny_scores[2]
    original = data.read_bytes()
    app = NlirgApp(review=DataScreen(scores, standalone=True))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await _open(pilot, app)
        assert [r.quality for r in screen.rows] == sorted(r.quality for r in screen.rows)  # worst first
        await _go_to(pilot, screen, lines["empty"])
        await pilot.press("d")
        await _go_to(pilot, screen, lines["one_token"])
        await pilot.press("k")
        await _go_to(pilot, screen, lines["garbled"])
        await pilot.press("e")
        editor = await until(pilot, lambda: isinstance(app.screen, RecordEditor) and app.screen, "the editor")
        answer = editor.query_one("#field-2", TextArea)
        assert "zq#@" in answer.text
        answer.text = ""
        await pilot.press("ctrl+s")  # the trainer would refuse an empty answer: refused here, with its reason
        assert app.screen is editor and "no non-empty assistant answer" in str(editor.query_one("#edit-error")
                                                                                  .render())
        answer.text = "Ten, fixed in review."
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, "back on the Data screen")
        assert data.read_bytes() == original  # edits go to the overlay, never into the data
        overlay = json.loads(scores.with_name("scores.overlay.json").read_text())["decisions"]
        assert {d["action"] for d in overlay.values()} == {"drop", "keep", "edit"}
        await pilot.press("w")
        await until(pilot, lambda: screen.written, "the cleaned copy")
        await pilot.press("r")  # no run: a new one from the score file's summary (model, data, max_length)
        ask = await until(pilot, lambda: isinstance(app.screen, RelaunchDialog) and app.screen, "the start dialog")
        assert "Start a new run from the cleaned data" in str(ask.query_one(".dialog-question").render())
        assert not ask.query("#weights")  # a new run: fresh weights, nothing to choose
        await pilot.press("escape")
        base = screen._base_config()
    clean = data.with_name("planted.clean.jsonl")
    assert (base.model.path, base.data.train, base.data.max_length) == ("builtin:tiny", [str(data)], 96)
    before, after = original.splitlines(keepends=True), clean.read_bytes().splitlines(keepends=True)
    untouched = [line for n, line in enumerate(before, 1) if n not in (lines["empty"], lines["garbled"])]
    assert [line for line in after if b"Ten, fixed in review." not in line] == untouched  # byte-identical, in order
    assert len(after) == len(before) - 1
    assert json.loads(next(line for line in after if b"Ten, fixed in review." in line))["instruction"] == \
        "What is 5 plus 5?"
    log = [json.loads(line) for line in data.with_name("planted.changes.jsonl").read_text().splitlines()]
    assert sorted(e["action"] for e in log) == ["drop", "edit"] and all("quality" in e["reason"] for e in log)


async def test_the_loud_tokens_are_one_key_apart(tiny_scores, tmp_path):
    _, scores = copy_scored(*tiny_scores[:2], tmp_path)
    app = NlirgApp(review=DataScreen(scores, standalone=True))
    async with app.run_test(size=(100, 32)) as pilot:
        screen = await _open(pilot, app)
        row = next(i for i, r in enumerate(screen.rows) if len(r.loud) >= 2)
        screen.query_one(DataTable).move_cursor(row=row)
        view = screen.query_one(RecordView)
        await until(pilot, lambda: view.row is screen.rows[row], "the record shown")
        view.focus()
        first = view.cursor
        assert first == view.row.loud[0]
        await pilot.press("]")
        assert view.cursor == view.row.loud[1]
        await pilot.press("[")
        assert view.cursor == first
        await pilot.press("right")
        assert view.cursor > first and view.row.losses[view.cursor] is not None
        assert "entropy" in str(screen.query_one("#data-detail").render())


async def test_a_relaunch_that_cannot_start_says_why_and_closes_its_progress(tiny_scores, tmp_path):
    """The dialog's edits pass the config's checks, but the data check before a run exists finds a malformed
    record: the progress screen closes, a notification says why in one line, and no run folder is made."""
    _, scores = copy_scored(*tiny_scores[:2], tmp_path)
    broken = tmp_path / "eval.jsonl"
    broken.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q2", "output": \n')
    seen: list = []
    app = NlirgApp(review=DataScreen(scores, standalone=True))
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await _open(pilot, app)
        await _go_to(pilot, screen, tiny_scores[2]["empty"])
        await pilot.press("d", "r")
        dialog = await until(pilot, lambda: isinstance(app.screen, RelaunchDialog) and app.screen, "the dialog")
        dialog.query_one("#more", Input).value = f"data.eval={broken} output.root={tmp_path / 'runs'}"
        await pilot.pause()
        assert not str(dialog.query_one("#relaunch-error").render())
        await pilot.press("enter")
        await until(pilot, lambda: any("relaunch failed" in n for n in notes(seen)), "the failure said")
        await until(pilot, lambda: app.screen is screen, "the Data screen back, the progress screen closed")
    failure = next(n for n in notes(seen) if "relaunch failed" in n)
    assert f"{broken}:2" in failure and "\n" not in failure
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def flagged_planted_run(tiny_scores, tmp_path_factory):
    """A finished tiny run with a checkpoint and flagged samples, trained on a copy of the planted data (the empty
    answer left out with data.exclude: the trainer refuses it)."""
    tmp = tmp_path_factory.mktemp("data-screen-run")
    data, scores = copy_scored(*tiny_scores[:2], tmp)
    exclude = tmp / "drop.txt"
    exclude.write_text(f"{data}:{tiny_scores[2]['empty']}\n")
    run_dir = tmp / "runs" / "base"
    overrides = [*TINY, f"data.train={data}", f"data.exclude={exclude}", "training.max_steps=2",
                 f"output.root={tmp / 'runs'}", "nlirg.hard_min=5.0", "nlirg.loss_deadline=6.95"]
    train_in_process(run_dir, overrides)
    save_config(make_config(overrides), run_dir / "config.yaml")  # what prepare_run writes for a real run
    (run_dir / "trainer.json").write_text(json.dumps({"name": "base", "status": "completed", "pid": None}))
    return run_dir, data, scores


async def _new_run(pilot, app: NlirgApp, old: Path) -> Path:
    screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.run_dir != old
                         and app.screen, "the new run's screen")
    return screen.run_dir


@pytest.mark.slow
async def test_relaunch_resumes_the_run_on_the_cleaned_data(flagged_planted_run, tiny_scores):
    run_dir, data, scores = flagged_planted_run
    lines = tiny_scores[2]
    new_dir = None
    app = NlirgApp(review=DataScreen(scores, run_dir, standalone=True))
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            screen = await _open(pilot, app)
            for name in ("empty", "garbled"):
                await _go_to(pilot, screen, lines[name])
                await pilot.press("d")
            await pilot.press("r")
            dialog = await until(pilot, lambda: isinstance(app.screen, RelaunchDialog) and app.screen,
                                 "the relaunch dialog")
            assert "cleaned data" in dialog.question and "step-2" in str(dialog.query_one("#weights").render())
            error = dialog.query_one("#relaunch-error")
            # The run's 2 steps are done: resuming at step 2 with max steps 2 would train nothing.
            await until(pilot, lambda: "leaves nothing to train after step 2" in str(error.render()), "the warning")
            await pilot.press("enter")
            assert app.screen is dialog  # refused until fixed
            dialog.query_one("#max-steps", Input).value = "4"
            dialog.query_one("#lr", Input).value = "1e-4"
            await until(pilot, lambda: not str(error.render()), "the values accepted")
            dialog.query_one("#weights").focus()
            await pilot.press("enter")  # resume weights (the marked choice)
            new_dir = await _new_run(pilot, app, run_dir)
            await until(pilot, lambda: (read_json(new_dir / "trainer.json") or {}).get("status") == "completed",
                        "the relaunched run to finish")
        clean = data.with_name("planted.clean.jsonl")
        cfg = build_config(new_dir / "config.yaml")
        assert (cfg.data.train, cfg.training.max_steps, cfg.training.lr) == ([str(clean)], 4, 1e-4)
        assert "resumed from" in (new_dir / "trainer.log").read_text()
        assert len(clean.read_text().splitlines()) == len(data.read_text().splitlines()) - 2
    finally:
        if new_dir is not None:
            stop_trainer(new_dir)


@pytest.mark.slow
async def test_a_flagged_sample_goes_from_the_inspector_to_the_data_screen(flagged_planted_run, tiny_scores):
    run_dir, data, _ = flagged_planted_run
    new_dir = None
    app = NlirgApp(run_dir=run_dir)
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            run_screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the run")
            await pilot.press("5")
            inspector = run_screen.query_one(InspectorPane)
            await until(pilot, lambda: len(inspector.samples) >= 2, "flagged samples")
            inspector.query_one("#flagged-table").focus()
            await pilot.press("down")
            sample = inspector.samples[1]
            await pilot.press("d")
            screen = await _open(pilot, app)
            current = screen.rows[screen.query_one(DataTable).cursor_row]
            assert (str(current.path), current.line) == (sample["source"], sample["line"])
            assert screen.review.kind == "flagged" and current.loud  # zeroed tokens to jump between
            await pilot.press("d", "r")  # drop it, then relaunch through the Run screen's own dialog
            await until(pilot, lambda: isinstance(app.screen, RelaunchDialog), "the Run screen's relaunch dialog")
            await pilot.press("right", "enter")  # fresh weights
            new_dir = await _new_run(pilot, app, run_dir)
        cfg = build_config(new_dir / "config.yaml")
        assert cfg.data.train == [str(data.with_name("planted.clean.jsonl"))]
        changes = {json.loads(x)["source"]: json.loads(x) for x in
                   data.with_name("planted.changes.jsonl").read_text().splitlines()}
        empty = f"{data}:{tiny_scores[2]['empty']}"  # the run's data.exclude follows into the cleaned copy
        assert set(changes) == {f"{data}:{sample['line']}", empty} and "data.exclude" in changes[empty]["reason"]
    finally:
        if new_dir is not None:
            stop_trainer(new_dir)


@pytest.mark.slow
async def test_a_live_run_is_stopped_with_its_progress_on_show_then_relaunched_with_the_edited_config(tmp_path):
    """`r` on a live run's flagged samples: the dialog's edits reach the new run's config, and while the old run
    stops (its checkpoint) a screen says so, with its pid, instead of ~30 s of nothing."""
    run_dir = start_trainer(tmp_path)
    new_dir = None
    try:
        flagged, deadline = run_dir / "flagged.jsonl", time.monotonic() + WAIT_S
        while not (flagged.is_file() and flagged.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.1)  # the Data screen reads the flagged samples when it opens
        pid = read_json(run_dir / "trainer.json")["pid"]
        app = NlirgApp(review=DataScreen(run_dir, run_dir, standalone=True))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await _open(pilot, app)
            await pilot.press("d", "r")
            dialog = await until(pilot, lambda: isinstance(app.screen, RelaunchDialog) and app.screen,
                                 "the relaunch dialog")
            assert f"Stop {run_dir.name}" in dialog.question
            dialog.query_one("#lr", Input).value = "5e-5"
            dialog.query_one("#weights").focus()
            await pilot.press("right", "enter")  # fresh weights
            progress = await until(pilot, lambda: isinstance(app.screen, RelaunchProgress) and app.screen,
                                   "the relaunch's progress")
            assert progress.phases[0] == f"stopping {run_dir.name} (pid {pid}): waiting for its checkpoint…"
            new_dir = await _new_run(pilot, app, run_dir)
            assert screen.written
        assert read_json(run_dir / "trainer.json")["status"] == "stopped"
        cfg = build_config(new_dir / "config.yaml")
        assert cfg.training.lr == 5e-5 and cfg.data.train == [str(tmp_path / "train.clean.jsonl")]
    finally:
        stop_trainer(run_dir)
        if new_dir is not None:
            stop_trainer(new_dir)
