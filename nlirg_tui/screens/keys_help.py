"""`?` on the Run screen: every key, grouped by where it works. Built from the bindings themselves (their
tooltip, else their footer description), so the list cannot drift from what the keys do."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from nlirg_tui.screens.dialogs import Dialog

KeySection = tuple[str, list[Binding]]


class KeysDialog(Dialog[None]):
    BINDINGS = [Binding("question_mark", "cancel", "close"), Binding("q", "cancel", "close")]

    def __init__(self, sections: list[KeySection]):
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog keys-dialog"):
            yield Static(Text("Keys", style="bold"))
            yield Static(self.key_table())
            yield Static(Text("Esc, ? or q closes", style="dim"))

    def key_table(self) -> Group:
        parts: list[Text | Table] = []
        for title, bindings in self.sections:
            parts.append(Text(title, style="bold underline"))
            table = Table(box=None, show_header=False, pad_edge=False, expand=True)
            table.add_column("key", style="bold", no_wrap=True, width=6)
            table.add_column("does", ratio=1)
            for binding in bindings:
                table.add_row(self.app.get_key_display(binding), binding.tooltip or binding.description)
            parts.append(table)
        return Group(*parts)
