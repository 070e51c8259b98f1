"""One record under review, token by token: answer tokens coloured by their NLIRG zone (a flagged sample's: the
trainer's, with the run's bounds; a score file's: the default bounds'), bold where the model was sure (entropy
<= 1 nat, score files), zeroed tokens and label-error suspects loud; prompt tokens dim."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message

from nlirg_tui.review_rows import ZEROED_ZONE, ReviewRow
from nlirg_tui.widgets.inspector import TokenView
from nlirg_tui.widgets.zones import ZONE_STYLES

SUSPECT_STYLE = "bold #FFFFFF on #8E44AD"
SURE_ENTROPY = 1.0
"""Entropy (nats) at or below which the model was sure of its prediction."""


def token_style(row: ReviewRow, i: int) -> str:
    """The row's own zone of the token (a flagged sample's: the run's bounds), as the Inspector colours it."""
    zone = row.zones[i] if i < len(row.zones) else None
    if zone is None:
        return "dim"
    if i in row.loud:
        return ZONE_STYLES[ZEROED_ZONE] if zone == ZEROED_ZONE else SUSPECT_STYLE
    entropy = row.entropies[i] if row.entropies is not None and i < len(row.entropies) else None
    sure = entropy is not None and entropy <= SURE_ENTROPY
    return ZONE_STYLES[zone] + (" bold" if sure else "")


def record_text(row: ReviewRow, cursor: int) -> Text:
    text = Text()
    for i, token in enumerate(row.tokens):
        style = token_style(row, i) + (" reverse" if i == cursor else "")
        text.append(token.replace("\n", "⏎\n"), style=style)
    return text


class RecordView(TokenView):
    """The Inspector's token view over a review row; the Data screen's keys move its cursor over the answer
    tokens or between the loud ones."""

    @dataclass
    class Moved(Message):
        row: ReviewRow
        index: int

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.row: ReviewRow | None = None

    def show_row(self, row: ReviewRow) -> None:
        self.row = row
        self.sample = {"source": str(row.path), "line": row.line}  # what TokenView's cursor steps check for
        self.show_at((row.loud or row.targets or [-1])[0])

    def watch_cursor(self) -> None:
        if self.row is not None:
            self.update(record_text(self.row, self.cursor))
            self.post_message(self.Moved(self.row, self.cursor))

    def move(self, delta: int) -> str | None:
        return self._step(self.row.targets if self.row else [], delta, "answer token")

    def jump_loud(self, delta: int) -> str | None:
        return self._step(self.row.loud if self.row else [], delta, "zeroed or label-error token")


def token_detail(row: ReviewRow, i: int) -> Text:
    if i < 0:
        return Text("This record has no answer token.")
    parts: list = [f"{row.path.name}:{row.line}  token {i} ", (repr(row.tokens[i]), "bold"),
                   f"  loss {row.losses[i]:.3f}"]
    if row.entropies is not None and row.entropies[i] is not None:
        parts.append(f"  entropy {row.entropies[i]:.3f}")
    if i in row.loud:
        parts.append(("  zeroed" if row.zones[i] == ZEROED_ZONE else "  label-error suspect",
                      "bold red"))
    return Text.assemble(*parts)
