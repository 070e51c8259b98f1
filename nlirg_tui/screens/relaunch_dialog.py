"""The relaunch dialog: the config the new run starts with (model, data, max steps, LR, NLIRG on/off, any other
key as `KEY=VALUE`) and the weights it starts from, resume or fresh, an explicit choice that ← and → move between.

It answers (once: see `Dialog`) with the checked config text and the weights choice, or None when cancelled. The
values are applied as `--set` overrides and checked with the trainer's rules as they are typed; a bad one is one
line in the dialog and Start waits for a fix."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label

from nlirg_tui.relaunch_config import RelaunchEdit, data_line, edited_config, model_line, steps_hint
from nlirg_tui.screens.dialogs import Dialog
from nlirg_tui.widgets.arrow_choice import ArrowChoice
from trainer_core.config import RunConfig, config_to_yaml


@dataclass(frozen=True)
class Relaunch:
    """The dialog's answer."""

    config_text: str
    resume: bool


@dataclass(frozen=True)
class ResumeOffer:
    """What the weights can be resumed from (`label`) and the step the new run would go on from (None: unknown)."""

    label: str
    step: int | None


class RelaunchDialog(Dialog[Relaunch]):
    BINDINGS = [Binding("enter", "start", "start", show=False), Binding("ctrl+s", "start", "start", show=False)]

    def __init__(self, question: str, cfg: RunConfig, offer: ResumeOffer | None) -> None:
        super().__init__()
        self.question = question
        self.base_text = config_to_yaml(cfg)
        self.base = cfg
        self.offer = offer
        self.edit = RelaunchEdit.of(cfg)

    def compose(self) -> ComposeResult:
        cfg, edit = self.base, self.edit
        with Vertical(classes="dialog relaunch-dialog"):
            yield Label(self.question, classes="dialog-question")
            with Grid(id="relaunch-fields"):
                yield Label("model")
                yield Label(model_line(cfg), id="relaunch-model", classes="relaunch-wide")
                yield Label("data")
                yield Label(data_line(cfg), id="relaunch-data", classes="relaunch-wide")
                yield Label("max steps")
                yield Input(edit.max_steps, id="max-steps", compact=True)
                yield Label(steps_hint(cfg), classes="relaunch-hint")
                yield Label("LR")
                yield Input(edit.lr, id="lr", compact=True)
                yield Label(f"peak, {cfg.training.scheduler}", classes="relaunch-hint")
                yield Label("NLIRG")
                yield ArrowChoice([("on", f"on ({cfg.nlirg.weighting})"), ("off", "off (plain CE)")],
                                  "on" if edit.nlirg else "off", id="nlirg-on")
                yield Label("--set")
                yield Input("", placeholder="KEY=VALUE ... e.g. training.warmup_steps=10", id="more", compact=True,
                            classes="relaunch-wide")
                yield Label("weights")
                if self.offer is None:
                    yield Label("fresh (no checkpoint to resume from)", classes="relaunch-wide")
                else:
                    yield ArrowChoice([("resume", f"resume from {self.offer.label}"), ("fresh", "fresh")], "resume",
                                      id="weights")
            yield Label("", id="relaunch-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start", id="start", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
            yield Label("Enter: start · ←/→: choose · Tab: next field · Esc: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        first = self.query("#weights") or self.query("#max-steps")
        first.first().focus()  # the choice that matters most starts with the keys

    @property
    def resume(self) -> bool:
        choice = self.query("#weights")
        return bool(choice) and choice.first(ArrowChoice).value == "resume"

    def edited(self) -> tuple[RunConfig | None, str]:
        self.edit = RelaunchEdit(self.query_one("#max-steps", Input).value, self.query_one("#lr", Input).value,
                                 self.query_one("#nlirg-on", ArrowChoice).value == "on",
                                 self.query_one("#more", Input).value)
        resumes_at = self.offer.step if self.offer and self.resume else None
        return edited_config(self.base_text, self.edit, resumes_at)

    @on(Input.Changed)
    @on(ArrowChoice.Changed)
    def _check(self) -> None:
        _, problem = self.edited()
        self.query_one("#relaunch-error", Label).update(problem)

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        cfg, problem = self.edited()
        if cfg is None:
            self.query_one("#relaunch-error", Label).update(problem)
            self.app.bell()
            return
        self.answer(Relaunch(config_to_yaml(cfg), self.resume))

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()
