"""The Data screen's editor pane: a record's prompt and answer in text areas, checked with the trainer's own
rules on save. It returns the edited record; the Data screen writes it to the overlay, never to the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Label, TextArea

from nlirg_tui.record_fields import editable_fields, record_problem, with_values
from nlirg_tui.screens.dialogs import Dialog


@dataclass
class Edited:
    record: dict[str, Any]
    note: str


class RecordEditor(Dialog[Edited]):
    """ctrl+s saves (refused, with the reason, when the trainer would refuse the record); escape cancels."""

    BINDINGS = [Binding("ctrl+s", "save", "save")]

    def __init__(self, record: dict[str, Any], where: str, note: str = ""):
        super().__init__()
        self.record = record
        self.where = where
        self.note = note
        self.fields = editable_fields(record)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog record-editor"):
            yield Label(f"Edit {self.where}  (ctrl+s save to the overlay, escape cancel)", classes="dialog-question")
            with VerticalScroll(id="editor-fields"):
                for i, field in enumerate(self.fields):
                    yield Label(field.label, classes="editor-label")
                    yield TextArea(field.value, id=f"field-{i}", classes="editor-field", soft_wrap=True)
            yield Input(self.note, placeholder="why (optional, goes to the changes log)", id="edit-note")
            yield Label("", id="edit-error", classes="dialog-error")

    def on_mount(self) -> None:
        if self.fields:
            self.query_one(f"#field-{len(self.fields) - 1}", TextArea).focus()  # the answer is the last field

    def values(self) -> list[str]:
        return [self.query_one(f"#field-{i}", TextArea).text for i in range(len(self.fields))]

    def action_save(self) -> None:
        edited = with_values(self.record, self.fields, self.values())
        problem = record_problem(edited, self.where)
        if problem:
            self.query_one("#edit-error", Label).update(problem)
            return
        self.answer(Edited(edited, self.query_one("#edit-note", Input).value.strip()))
