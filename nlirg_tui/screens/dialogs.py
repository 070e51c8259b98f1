"""Small modal dialogs: quit (leave the run going by default), confirm, one value; and `ask`, the one way a
screen opens a dialog (the relaunch dialog has its own module, `relaunch_dialog`).

A dialog answers exactly once: a key that repeats (Enter held, or two Enters in one read over a slow SSH link)
or an Enter that also presses a button cannot send its command twice. `ask` pushes the dialog at once (no
worker in between), so a second key press that arrives before the dialog is drawn lands on the dialog, not on
the screen behind it: one key, one dialog.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label

T = TypeVar("T")


class Dialog(ModalScreen[T]):
    """A modal that dismisses once; later answers (a repeated Enter, a second button press) are dropped."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    answered = False
    """True once the dialog has given its answer; nothing after that reaches the caller."""

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def answer(self, result: T | None) -> None:
        if self.answered:
            return
        self.answered = True
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.answer(None)


def early_key_target(app: Any, event: events.Event) -> ValueDialog | None:
    """For an App's `on_event`: the value dialog a key belongs to although it reached the screen behind it.

    `l` then `0.5` Enter in one burst: every key is handed to the screen that was on top when it arrived, before
    `l`'s binding opened the dialog; their bindings are then looked up on the dialog, where `0` means nothing and
    Enter submits the value shown. A key older than the dialog, bubbling up from the screen behind, is typed into
    the dialog instead."""
    if not isinstance(event, events.Key) or not event.is_forwarded or not app.screen_stack:
        return None
    dialog = app.screen
    if isinstance(dialog, ValueDialog) and not dialog.answered and event.time < dialog.opened_at:
        return dialog
    return None


def ask(screen: Screen, dialog: Dialog[T], then: Callable[[T | None], Any]) -> bool:
    """Open `dialog` over `screen` and call `then` with its answer; False (and nothing opened) when something is
    already open over the screen, so a key pressed twice never stacks two dialogs that each send a command."""
    if screen.app.screen is not screen:
        return False
    screen.app.push_screen(dialog, then)
    return True


class Choice(Dialog[str]):
    """A question and buttons; answers with the pressed button's id; escape gives `cancel_id`. Left and Right
    move between the buttons (as Tab does), so Right then Enter answers with the button right of the default."""

    BINDINGS = [Binding("right", "app.focus_next", "next", show=False),
                Binding("left", "app.focus_previous", "previous", show=False)]

    def __init__(self, question: str, choices: list[tuple[str, str]], default: str, cancel_id: str = "cancel"):
        super().__init__()
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
        self.answer(event.button.id)

    def action_cancel(self) -> None:
        self.answer(self.cancel_id)


def quit_dialog(run_name: str) -> Choice:
    return Choice(f"Leave {run_name} running?  (Enter: leave it going)",
                  [("leave", "Leave running"), ("stop", "Stop the run"), ("cancel", "Cancel")], default="leave")


def confirm_dialog(question: str, yes: str = "Yes") -> Choice:
    return Choice(question, [("yes", yes), ("no", "No")], default="no", cancel_id="no")


class ValueDialog(Dialog[str]):
    """One value typed by the user; Enter submits, escape cancels (None). The value starts selected, so typing
    replaces it."""

    def __init__(self, prompt: str, value: str = "", placeholder: str = "", early_chars: str | None = None):
        super().__init__()
        self.early_chars = early_chars
        """The characters a key typed before the dialog opened may add (None: any); a repeat of the key that
        opened it (`l l` in one read) is not one of them."""
        self.prompt = prompt
        self.value = value
        self.placeholder = placeholder
        self.opened_at = time.monotonic()
        """Keys older than this were typed before the dialog opened (`early_key_target`)."""
        self._early: list[events.Key] = []
        """Keys handed over before the field existed (`type_ahead`)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.prompt, classes="dialog-question")
            yield Input(self.value, placeholder=self.placeholder, id="value")
            yield Label("Enter: submit · Esc: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        early, self._early = self._early, []
        for event in early:
            self.type_ahead(event)

    _typed = False

    def type_ahead(self, event: events.Key) -> None:
        """A key typed in the same burst as the one that opened this dialog: text into the field (the first
        replaces the value shown, as typing into it would), Enter submits; kept until the field exists."""
        if not self.is_mounted:
            self._early.append(event)
            return
        field = self.query_one(Input)
        if event.key == "enter":
            self.answer(field.value.strip())
        elif event.is_printable and event.character and (self.early_chars is None
                                                         or event.character in self.early_chars):
            if not self._typed:
                self._typed = True
                field.value = ""
            field.insert_text_at_cursor(event.character)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.answer(event.value.strip())
