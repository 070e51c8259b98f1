"""The Inspector pane: flagged samples worst first (zeroed tokens, then mean loss); the selected one shown
token by token, coloured by zone, with the loss and weight of the token under the cursor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from nlirg_tui.state import ZONE_NAMES, RunState
from nlirg_tui.widgets.zones import ZONE_STYLES


def token_text(sample: dict[str, Any], cursor: int) -> Text:
    """The sample's tokens; targets coloured by zone, zeroed ones loud, the cursor token reversed."""
    text = Text()
    zones = sample.get("zones") or []
    for i, token in enumerate(sample.get("tokens") or []):
        zone = zones[i] if i < len(zones) else None
        style = ZONE_STYLES[zone] if zone is not None else "dim"
        if i == cursor:
            style += " reverse"
        text.append(token.replace("\n", "⏎\n"), style=style)
    return text


def target_positions(sample: dict[str, Any]) -> list[int]:
    return [i for i, z in enumerate(sample.get("zones") or []) if z is not None]


class TokenView(Static, can_focus=True):
    """The selected sample; left/right move over target tokens, [ and ] jump between zeroed ones."""

    BINDINGS = [
        Binding("left", "move(-1)", "prev token", show=False),
        Binding("right", "move(1)", "next token", show=False),
        Binding("[", "jump_zeroed(-1)", "prev zeroed"),
        Binding("]", "jump_zeroed(1)", "next zeroed"),
    ]

    cursor: reactive[int] = reactive(-1, init=False)
    """Index into the sample's tokens of the token under the cursor (-1: none)."""

    @dataclass
    class Moved(Message):
        sample: dict[str, Any]
        index: int

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sample: dict[str, Any] = {}

    def show_sample(self, sample: dict[str, Any]) -> None:
        self.sample = sample
        targets = target_positions(sample)
        zeroed = [i for i in targets if sample["zones"][i] == 3]
        self.cursor = (zeroed or targets or [-1])[0]
        self.watch_cursor()

    def watch_cursor(self) -> None:
        self.update(token_text(self.sample, self.cursor))
        self.post_message(self.Moved(self.sample, self.cursor))

    def action_move(self, delta: int) -> None:
        self._step(target_positions(self.sample), delta)

    def action_jump_zeroed(self, delta: int) -> None:
        zones = self.sample.get("zones") or []
        self._step([i for i in target_positions(self.sample) if zones[i] == 3], delta)

    def _step(self, positions: list[int], delta: int) -> None:
        if not positions:
            return
        after = [p for p in positions if (p - self.cursor) * delta > 0]
        if after:
            self.cursor = after[0] if delta > 0 else after[-1]


class InspectorPane(Vertical):
    """Space marks samples, `e` (on the Run screen) exports the marked ones, or the current one."""

    BINDINGS = [Binding("space", "toggle_mark", "mark")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: list[dict[str, Any]] = []
        self.marked: set[tuple[Any, Any]] = set()
        self._shown_version = -1

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="flagged-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("", "zeroed", "mean loss", "source:line")
        yield table
        yield Static("No flagged samples yet.", id="token-detail")
        yield TokenView(id="token-view")

    def update_from(self, state: RunState) -> None:
        if state.version == self._shown_version:
            return
        self._shown_version = state.version
        samples = state.flagged_worst_first()
        if [_key(s) for s in samples] == [_key(s) for s in self.samples]:
            return
        table = self.query_one(DataTable)
        shown = self.query_one(TokenView).sample
        keep = _key(shown) if shown else None
        self.samples = samples
        table.clear()
        for s in samples:
            table.add_row(self._mark(s), str(s.get("zeroed_tokens", 0)), f"{s.get('mean_loss', 0):.3f}",
                          f"{_short(s.get('source'))}:{s.get('line')}")
        if not samples:
            return
        # New flagged samples arrive while the user reads one: keep that one selected, cursor and all.
        keys = [_key(s) for s in samples]
        row = keys.index(keep) if keep in keys else 0
        table.move_cursor(row=row)
        if keys[row] != keep:
            self._select(row)

    @on(DataTable.RowHighlighted)
    def _on_row(self, event: DataTable.RowHighlighted) -> None:
        if self.samples and _key(self.samples[event.cursor_row]) == _key(self.query_one(TokenView).sample):
            return  # the table was rebuilt under the same sample: leave its token cursor where it is
        self._select(event.cursor_row)

    def _select(self, row: int) -> None:
        if 0 <= row < len(self.samples):
            self.query_one(TokenView).show_sample(self.samples[row])

    @on(TokenView.Moved)
    def _on_token(self, event: TokenView.Moved) -> None:
        s, i = event.sample, event.index
        if i < 0:
            self.query_one("#token-detail", Static).update("This sample has no target token.")
            return
        zone = s["zones"][i]
        self.query_one("#token-detail", Static).update(Text.assemble(
            f"{_short(s.get('source'))}:{s.get('line')}  token {i} ", (repr(s['tokens'][i]), "bold"),
            f"  loss {s['losses'][i]:.3f}  weight {s['weights'][i]:.3g}  zone ",
            (ZONE_NAMES[zone], ZONE_STYLES[zone])))

    def action_toggle_mark(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        if not 0 <= row < len(self.samples):
            return
        key = _key(self.samples[row])
        self.marked ^= {key}
        table.update_cell_at((row, 0), self._mark(self.samples[row]))

    def selected(self) -> list[dict[str, Any]]:
        """The marked samples, or the one under the cursor when none is marked."""
        marked = [s for s in self.samples if _key(s) in self.marked]
        if marked:
            return marked
        row = self.query_one(DataTable).cursor_row
        return [self.samples[row]] if 0 <= row < len(self.samples) else []

    def _mark(self, sample: dict[str, Any]) -> str:
        return "●" if _key(sample) in self.marked else " "


def _key(sample: dict[str, Any]) -> tuple[Any, Any]:
    return sample.get("source"), sample.get("line") if sample.get("line") is not None else sample.get("sample_id")


def _short(path: Any) -> str:
    return str(path).rsplit("/", 1)[-1] if path else "?"
