"""Small modal dialogs: quit (leave the run going by default), confirm, one value, relaunch."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class Choice(ModalScreen[str]):
    """A question and buttons; dismisses with the pressed button's id; escape gives `cancel_id`."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, choices: list[tuple[str, str]], default: str, cancel_id: str = "cancel"):
        super().__init__(classes="dialog-screen")
        self.question = question
        self.choices = choices
        self.default = default
        self.cancel_id = cancel_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                for choice_id, label in self.choices:
                    yield Button(label, id=choice_id, variant="primary" if choice_id == self.default else "default",
                                 compact=True)

    def on_mount(self) -> None:
        self.query_one(f"#{self.default}", Button).focus()  # Enter answers with the default

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_cancel(self) -> None:
        self.dismiss(self.cancel_id)


def quit_dialog(run_name: str) -> Choice:
    return Choice(f"Leave {run_name} running?  (Enter: leave it going)",
                  [("leave", "Leave running"), ("stop", "Stop the run"), ("cancel", "Cancel")], default="leave")


def confirm_dialog(question: str, yes: str = "Yes") -> Choice:
    return Choice(question, [("yes", yes), ("no", "No")], default="no", cancel_id="no")


def relaunch_dialog(checkpoint: str | None) -> Choice:
    if checkpoint is None:
        return Choice("Stop this run and start a new run from the edited config?",
                      [("fresh", "Relaunch"), ("cancel", "Cancel")], default="fresh")
    return Choice(f"Stop this run and start a new one from the edited config. Resume weights from {checkpoint}?",
                  [("resume", "Resume weights"), ("fresh", "Fresh weights"), ("cancel", "Cancel")], default="resume")


class ValueDialog(ModalScreen[str | None]):
    """One value typed by the user; Enter submits, escape cancels (None)."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, prompt: str, value: str = "", placeholder: str = ""):
        super().__init__(classes="dialog-screen")
        self.prompt = prompt
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.prompt, classes="dialog-question")
            yield Input(self.value, placeholder=self.placeholder, id="value")
            yield Label("", id="value-error", classes="dialog-error")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
