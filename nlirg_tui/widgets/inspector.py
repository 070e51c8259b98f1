"""The Inspector pane: flagged samples worst first (zeroed tokens, then mean loss); the selected one shown
token by token, coloured by zone, with the loss and weight of the token under the cursor.

Its keys belong to the pane, not to one of its two parts: ↑/↓ pick a sample and ←/→ move over its tokens
whether the sample list or the token view has focus, so the pane never needs a Tab first.
"""

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

ZEROED = Binding.Group("zeroed", compact=True)
"""`[` and `]` share one footer entry."""


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
    """The selected sample; the Inspector's keys move its cursor over target tokens or between zeroed ones."""

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
        self.show_at((zeroed or targets or [-1])[0])

    def show_at(self, cursor: int) -> None:
        """A new sample at `cursor`: drawn and announced once, whether or not the cursor's number changed (setting
        the reactive runs its watcher only on a change)."""
        self.set_reactive(TokenView.cursor, cursor)
        self.watch_cursor()

    def watch_cursor(self) -> None:
        self.update(token_text(self.sample, self.cursor))
        self.post_message(self.Moved(self.sample, self.cursor))

    def move(self, delta: int) -> str | None:
        """Move to the next (+1) or previous (-1) target token; says why not when there is none."""
        return self._step(target_positions(self.sample), delta, "target token")

    def jump_zeroed(self, delta: int) -> str | None:
        zones = self.sample.get("zones") or []
        return self._step([i for i in target_positions(self.sample) if zones[i] == 3], delta, "zeroed token")

    def _step(self, positions: list[int], delta: int, what: str) -> str | None:
        if not self.sample:
            return "no sample selected"
        if not positions:
            return f"this sample has no {what}"
        after = [p for p in positions if (p - self.cursor) * delta > 0]
        if not after:
            return f"no {what} {'after' if delta > 0 else 'before'} this one"
        self.cursor = after[0] if delta > 0 else after[-1]
        return None


class FlaggedTable(DataTable, inherit_bindings=False):
    """The flagged samples. It keeps DataTable's up/down/page keys but not left/right, which move over the
    tokens of the selected sample (the Inspector's binding) instead of scrolling this narrow table sideways."""

    BINDINGS = [
        Binding("up", "cursor_up", "sample up", show=False),
        Binding("down", "cursor_down", "sample down", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("home", "scroll_top", show=False),
        Binding("end", "scroll_bottom", show=False),
    ]


class InspectorPane(Vertical):
    """Space marks samples, `e` exports the marked ones, or the current one (the Run screen writes the file); `d`
    opens the current one on the Data screen (review, fix, relaunch)."""

    BINDINGS = [
        Binding("left", "move_token(-1)", "token", show=False, tooltip="previous target token"),
        Binding("right", "move_token(1)", "token", show=False, tooltip="next target token"),
        Binding("up", "move_sample(-1)", show=False, tooltip="previous flagged sample"),
        Binding("down", "move_sample(1)", show=False, tooltip="next flagged sample"),
        Binding("[", "jump_zeroed(-1)", "zeroed", tooltip="previous zeroed token", group=ZEROED),
        Binding("]", "jump_zeroed(1)", "zeroed", tooltip="next zeroed token", group=ZEROED),
        Binding("space", "toggle_mark", "mark", key_display="␣", tooltip="mark the sample for export"),
        Binding("e", "screen.export", "export", tooltip="export the marked samples (or this one) to review.jsonl"),
        # Off the footer (it fits 80 columns); in the `?` list and the sample list's title.
        Binding("d", "review", "data", show=False, tooltip="this sample on the Data screen: drop, edit, relaunch"),
    ]

    @dataclass
    class ReviewRequested(Message):
        """Open the run's flagged samples on the Data screen at this one."""

        sample: dict[str, Any]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: list[dict[str, Any]] = []
        # Marked samples by key, kept whole: a live update can push a marked sample off the worst-first list,
        # and the export must still hold every sample the user marked.
        self.marked: dict[tuple[Any, Any], dict[str, Any]] = {}
        self._shown_version = -1

    def compose(self) -> ComposeResult:
        table = FlaggedTable(id="flagged-table", cursor_type="row", zebra_stripes=True, classes="pane-part")
        table.add_columns("", "zeroed", "mean loss", "source:line")
        table.border_title = "flagged samples, worst first · ↑↓ · d review"
        yield table
        yield Static("No flagged samples yet.", id="token-detail")
        view = TokenView(id="token-view", classes="pane-part")
        view.border_title = "tokens · ←→ move · [ ] zeroed"
        yield view

    def update_from(self, state: RunState) -> None:
        if state.version == self._shown_version:
            return
        self._shown_version = state.version
        samples = state.flagged_worst_first()
        if [sample_key(s) for s in samples] == [sample_key(s) for s in self.samples]:
            return
        table = self.query_one(DataTable)
        shown = self.query_one(TokenView).sample
        # Keep the row the user's cursor is on, not the sample on show: the view follows the cursor a message
        # later, and a rebuild in between sent the cursor back to the sample it had just left (a mark then
        # toggled the wrong row).
        row = table.cursor_row
        keep = sample_key(self.samples[row]) if 0 <= row < len(self.samples) else sample_key(shown) if shown else None
        self.samples = samples
        for s in samples:
            if sample_key(s) in self.marked:
                self.marked[sample_key(s)] = s  # the newest version of a marked sample
        table.clear()
        for s in samples:
            table.add_row(self._mark(s), str(s.get("zeroed_tokens", 0)), f"{s.get('mean_loss', 0):.3f}",
                          f"{_short(s.get('source'))}:{s.get('line')}")
        if not samples:
            return
        # New flagged samples arrive while the user reads one: keep that one selected, cursor and all.
        keys = [sample_key(s) for s in samples]
        row = keys.index(keep) if keep in keys else 0
        table.move_cursor(row=row)
        if not shown or keys[row] != sample_key(shown):
            self._select(row)

    @on(DataTable.RowHighlighted)
    def _on_row(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row != self.query_one(FlaggedTable).cursor_row:
            return  # stale: a rebuild's clear() highlighted row 0 before the cursor went back to the shown sample
        if self.samples and sample_key(self.samples[event.cursor_row]) == sample_key(self.query_one(TokenView).sample):
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

    def action_move_token(self, delta: int) -> None:
        self._say(self.query_one(TokenView).move(delta))

    def action_jump_zeroed(self, delta: int) -> None:
        self._say(self.query_one(TokenView).jump_zeroed(delta))

    def action_move_sample(self, delta: int) -> None:
        """↑/↓ while the token view has focus: the sample list's cursor moves all the same."""
        table = self.query_one(FlaggedTable)
        table.move_cursor(row=max(table.cursor_row + delta, 0))

    def _say(self, problem: str | None) -> None:
        if problem:
            self.notify(problem, timeout=2)

    def action_toggle_mark(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        if not 0 <= row < len(self.samples):
            self.notify("no flagged sample to mark", severity="warning", timeout=2)
            return
        sample = self.samples[row]
        if self.marked.pop(sample_key(sample), None) is None:
            self.marked[sample_key(sample)] = sample
        table.update_cell_at((row, 0), self._mark(self.samples[row]))
        table.border_subtitle = f"{len(self.marked)} marked · e exports them" if self.marked else ""

    def action_review(self) -> None:
        row = self.query_one(DataTable).cursor_row
        if not 0 <= row < len(self.samples):
            self.notify("no flagged sample to review", severity="warning", timeout=2)
            return
        self.post_message(self.ReviewRequested(self.samples[row]))

    def selected(self) -> list[dict[str, Any]]:
        """The marked samples (those a live update took off the list included), or the one under the cursor when
        none is marked."""
        if self.marked:
            return list(self.marked.values())
        row = self.query_one(DataTable).cursor_row
        return [self.samples[row]] if 0 <= row < len(self.samples) else []

    def _mark(self, sample: dict[str, Any]) -> str:
        return "●" if sample_key(sample) in self.marked else " "


def sample_key(sample: dict[str, Any]) -> tuple[Any, Any]:
    """A flagged sample's identity in the list: its source and line (or sample id)."""
    return sample.get("source"), sample.get("line") if sample.get("line") is not None else sample.get("sample_id")


def _short(path: Any) -> str:
    return str(path).rsplit("/", 1)[-1] if path else "?"
