"""The relaunch dialog (issue 25, section 5): the new run's config on show and editable before it starts (max steps,
LR, NLIRG on/off, any key as KEY=VALUE), checked as typed; a bad value is one line in the dialog, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Input, Label

from nlirg_tui.config_check import check_config_text
from nlirg_tui.screens.relaunch_dialog import Relaunch, RelaunchDialog, ResumeOffer
from tests.tui.conftest import until, write_data
from trainer_core.config import config_from_dict

pytestmark = pytest.mark.anyio


class DialogApp(App):
    CSS_PATH = "../../nlirg_tui/app.tcss"

    def __init__(self, data: Path, offer: ResumeOffer | None) -> None:
        super().__init__()
        self.data = data
        self.offer = offer
        self.answers: list[Relaunch | None] = []

    def on_mount(self) -> None:
        cfg = config_from_dict({"model": {"path": "builtin:tiny"}, "lora": {"enabled": False},
                                "data": {"train": [str(self.data)]},
                                "training": {"max_steps": 12, "lr": 2e-4}})
        self.push_screen(RelaunchDialog("Stop base and start a new run from the cleaned data:", cfg, self.offer),
                         self.answers.append)


async def _dialog(pilot, app: DialogApp) -> RelaunchDialog:
    return await until(pilot, lambda: isinstance(app.screen, RelaunchDialog) and app.screen, "the relaunch dialog",
                       timeout=30)


def _error(dialog: RelaunchDialog) -> str:
    return str(dialog.query_one("#relaunch-error", Label).render())


async def test_the_dialog_shows_the_config_and_starts_with_the_values_typed(tmp_path):
    data = write_data(tmp_path / "sft300.clean.jsonl")
    app = DialogApp(data, ResumeOffer("step-12", 12))
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await _dialog(pilot, app)
        text = " ".join(str(part.render()) for part in dialog.query("Label, ArrowChoice"))
        for seen in ("builtin:tiny · full fine-tune", "sft300.clean.jsonl", "resume from step-12", "fresh"):
            assert seen in text, seen
        # Resuming at step 12 with max steps 12 would train nothing: said at once, not after a relaunch.
        assert "training.max_steps: 12 leaves nothing to train after step 12" in _error(dialog)
        dialog.query_one("#max-steps", Input).value = "30"
        lr = dialog.query_one("#lr", Input)
        lr.value = "fast"
        await until(pilot, lambda: "training.lr" in _error(dialog), "the LR's problem")
        assert "\n" not in _error(dialog)  # one line
        await pilot.press("enter")  # refused: the dialog stays, nothing is answered
        assert app.screen is dialog and not app.answers
        lr.value = "1e-4"
        dialog.query_one("#more", Input).value = "training.warmup_steps=3 nlirg.loss_deadline=12"
        await until(pilot, lambda: not _error(dialog), "the values accepted")
        nlirg = dialog.query_one("#nlirg-on")
        nlirg.focus()
        await pilot.press("right")  # off
        dialog.query_one("#weights").focus()
        await pilot.press("enter")
        answer = await until(pilot, lambda: app.answers and app.answers[0], "the answer")
    cfg, problems = check_config_text(answer.config_text)
    assert not problems and answer.resume
    assert (cfg.training.max_steps, cfg.training.lr, cfg.training.warmup_steps) == (30, 1e-4, 3)
    assert (cfg.nlirg.enabled, cfg.nlirg.loss_deadline) == (False, 12.0)
    assert cfg.data.train == [str(data)] and cfg.model.path == "builtin:tiny"


async def test_a_bad_set_line_is_one_line_and_fresh_weights_have_no_step_limit(tmp_path):
    app = DialogApp(write_data(tmp_path / "train.jsonl"), ResumeOffer("step-12", 12))
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await _dialog(pilot, app)
        await pilot.press("right")  # fresh weights: max steps 12 trains 12 new steps
        await until(pilot, lambda: not _error(dialog), "no problem with fresh weights")
        more = dialog.query_one("#more", Input)
        for typed, problem in (("training.lr", "expected KEY=VALUE"), ("training.lrr=1", "did you mean"),
                               ("data.max_length='1", "--set")):
            more.value = typed
            await until(pilot, lambda p=problem: p in _error(dialog), problem)
            assert "\n" not in _error(dialog)
        more.value = ""
        await until(pilot, lambda: not _error(dialog), "the problem gone")
        dialog.query_one("#weights").focus()
        await pilot.press("enter")
        answer = await until(pilot, lambda: app.answers and app.answers[0], "the answer")
    assert not answer.resume
