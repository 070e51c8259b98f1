"""One of a few options in a row, moved with ← and →: the marked option is the answer, so what Enter does is what
the user sees marked (a row of buttons moved the focus instead, and Enter pressed whichever button had it)."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget


class ArrowChoice(Widget, can_focus=True):
    DEFAULT_CSS = """
    ArrowChoice { height: 1; width: 1fr; }
    ArrowChoice:focus { background: $boost; }
    """
    BINDINGS = [Binding("left", "move(-1)", "previous", show=False),
                Binding("right", "move(1)", "next", show=False)]

    value: reactive[str] = reactive("")

    class Changed(Message):
        def __init__(self, choice: ArrowChoice, value: str) -> None:
            super().__init__()
            self.choice = choice
            self.value = value

        @property
        def control(self) -> ArrowChoice:
            return self.choice

    def __init__(self, options: list[tuple[str, str]], value: str, *, id: str | None = None) -> None:
        """`options`: (value, label) pairs in the order shown; `value`: the one marked at first."""
        super().__init__(id=id)
        self.options = options
        self.set_reactive(ArrowChoice.value, value)

    def render(self) -> Text:
        text = Text()
        for value, label in self.options:
            chosen = value == self.value
            text.append(("◉ " if chosen else "○ ") + label, style="bold reverse" if chosen and self.has_focus
                        else "bold" if chosen else "dim")
            text.append("   ")
        return text

    def action_move(self, delta: int) -> None:
        values = [v for v, _ in self.options]
        i = values.index(self.value) if self.value in values else 0
        self.value = values[max(0, min(len(values) - 1, i + delta))]  # no wrap: Right twice stays right

    def watch_value(self, value: str) -> None:
        self.post_message(self.Changed(self, value))

    def on_click(self, event: events.Click) -> None:
        x = 0
        for value, label in self.options:
            width = len(label) + 5
            if event.x < x + width:
                self.value = value
                return
            x += width
