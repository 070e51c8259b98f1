"""A finished run replays from its events.jsonl alone; the Config pane validates as you type and diffs."""

from __future__ import annotations

import json

import pytest
from textual.widgets import TextArea

from nlirg_tui.app import NlirgApp
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.widgets.config_editor import ConfigPane
from tests.tui.conftest import until
from tests.tui.fixture_run import STEPS, fixture_events

pytestmark = pytest.mark.anyio


async def test_finished_run_replays_every_event(fixture_run):
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen: RunScreen = app.screen
        await until(pilot, lambda: screen.link_mode == "replay", "the replay to finish")
        state = screen.state
        assert state.step == STEPS and state.status == "completed" and state.ended
        assert state.events_seen == len(fixture_events())
        assert len(state.flagged) == 3 and state.eval_loss.count == 3
        assert any("lr_scale=0.5" in line for line in state.log)
        assert not screen.query_one("#banner").display
        await pilot.press("p")  # a finished run has no trainer to steer: refused locally, never a crash
        await until(pilot, lambda: "refused" in state.last_ack, "the refusal")
        await pilot.press("q")  # nothing running: no question, just leave
        await until(pilot, lambda: not app.is_running, "the app to exit")


async def test_torn_last_line_is_skipped(fixture_run):
    with (fixture_run / "events.jsonl").open("a") as fh:
        fh.write('{"v": 1, "type": "step", "seq": 9999, "st')  # a crash mid-write
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.link_mode == "replay", "the replay")
        assert app.screen.state.last_seq == len(fixture_events()) - 1


async def test_config_is_validated_as_you_type_and_diffed(fixture_run):
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("1")
        pane = app.screen.query_one(ConfigPane)
        editor = pane.query_one(TextArea)
        editor.focus()
        editor.move_cursor((0, 0))
        await pilot.press(*"bogus: 1", "enter")
        expected = ["bogus: unknown section; sections: model, data, training, lora, nlirg, telemetry, eval, output, "
                    "distributed"]
        # Validation runs as you type: a check between "1" and the enter sees one line "bogus: 1model: ..." and
        # its YAML error, so wait for the finished text's verdict.
        await until(pilot, lambda: pane.problems == expected, "the finished text's problems")
        assert "bogus: unknown section" in str(pane.query_one("#config-problems").render())
        await pilot.press("ctrl+t")
        assert pane.show_diff
        assert "+bogus: 1" in pane.diff_text
        await pilot.press("ctrl+r")  # refused while the config has problems
        await pilot.pause(0.2)
        assert isinstance(app.screen, RunScreen)
        editor.text = editor.text.replace("bogus: 1\n", "").replace("lr: 0.0002", "lr: -1")
        await until(pilot, lambda: pane.problems == ["training.lr: -1.0 must be > 0"], "the key-path error")
        editor.text = editor.text.replace("lr: -1", "lr: [")
        await until(pilot, lambda: pane.problems and "YAML syntax error" in pane.problems[0], "the YAML error")
        assert pane.problems[0].startswith("line ")


async def test_theme_choice_is_remembered(fixture_run, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "nlirg-dark"
        await pilot.press("ctrl+p")
        await pilot.press(*"theme")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        await pilot.press(*"nlirg-light")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: app.theme == "nlirg-light", "the light theme")
    saved = json.loads((tmp_path / "cfg" / "nlirg" / "settings.json").read_text())
    assert saved["theme"] == "nlirg-light"
    again = NlirgApp(run_dir=fixture_run)
    assert again.theme == "nlirg-light"


async def test_config_pane_shows_the_memory_verdict_live(fixture_run, tmp_path, monkeypatch):
    from nlirg_tui.plan_verdict import local_gpu_memory

    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
        "num_attention_heads": 32, "vocab_size": 32000}))  # a 7B's config.json alone
    monkeypatch.setenv("NLIRG_GPU_MEM", "24GB")
    local_gpu_memory.cache_clear()
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("1")
        pane = app.screen.query_one(ConfigPane)
        await until(pilot, lambda: pane.verdict.startswith("memory: fits in 24.0 GB: "), "the fitting verdict")
        editor = pane.query_one(TextArea)
        editor.text = editor.text.replace("builtin:tiny", str(big))
        await until(pilot, lambda: "needs" in pane.verdict, "the verdict for a 7B")
        assert "turn on gradient checkpointing" in pane.verdict
        assert "needs" in str(pane.query_one("#config-plan").render())
    local_gpu_memory.cache_clear()
