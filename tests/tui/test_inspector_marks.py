"""The Inspector's marks under live updates: a marked sample that a newer, worse one pushes off the list is still
exported, and a rebuild that lands between a cursor move and the view following it keeps the row the user is on
(it used to send the cursor back to the sample on show, so the next mark toggled the wrong row)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App, ComposeResult

from nlirg_tui.state import RunState
from nlirg_tui.widgets.inspector import FlaggedTable, InspectorPane, TokenView

pytestmark = pytest.mark.anyio


def _sample(line: int, zeroed: int) -> dict[str, Any]:
    return {"source": "train.jsonl", "line": line, "sample_id": line, "zeroed_tokens": zeroed, "mean_loss": 5.0,
            "tokens": ["a", " b", " c"], "losses": [None, 16.0, 1.0], "weights": [None, 0.0, 1.0],
            "zones": [None, 3, 1]}


class _Inspector(App):
    def compose(self) -> ComposeResult:
        yield InspectorPane()


def _show(state: RunState, pane: InspectorPane, *samples: dict[str, Any], drop: tuple[int, ...] = ()) -> None:
    for s in samples:
        state.flagged[(s["source"], s["line"])] = s
    for line in drop:
        state.flagged.pop(("train.jsonl", line))
    state.version += 1
    pane.update_from(state)


async def test_marked_samples_survive_the_list_moving_under_them():
    app = _Inspector()
    async with app.run_test(size=(80, 24)) as pilot:
        pane, state = app.query_one(InspectorPane), RunState()
        _show(state, pane, _sample(1, 3), _sample(2, 2), _sample(3, 1))
        table = pane.query_one(FlaggedTable)
        table.focus()
        await pilot.pause()
        await pilot.press("space", "down", "space")  # lines 1 and 2
        assert table.border_subtitle.startswith("2 marked")
        # A worse sample arrives and the state's cap drops line 2 off the list: both marks still export.
        _show(state, pane, _sample(9, 5), drop=(2,))
        await pilot.pause()
        assert [s["line"] for s in pane.samples] == [9, 1, 3]
        assert sorted(s["line"] for s in pane.selected()) == [1, 2]
        # Unmarking works on the row, not on a stale copy.
        table.move_cursor(row=1)
        await pilot.press("space")
        assert [s["line"] for s in pane.selected()] == [2]


async def test_a_rebuild_between_cursor_move_and_view_keeps_the_users_row():
    app = _Inspector()
    async with app.run_test(size=(80, 24)) as pilot:
        pane, state = app.query_one(InspectorPane), RunState()
        _show(state, pane, _sample(1, 3), _sample(2, 2), _sample(3, 1))
        table, view = pane.query_one(FlaggedTable), pane.query_one(TokenView)
        table.focus()
        await pilot.pause()
        assert view.sample["line"] == 1
        table.move_cursor(row=1)  # the user moves to line 2; the view follows a message later
        _show(state, pane, _sample(9, 5))  # ... and a new worst sample rebuilds the list before it does
        await pilot.pause()
        assert pane.samples[table.cursor_row]["line"] == 2
        assert view.sample["line"] == 2
        await pilot.press("space")
        assert [s["line"] for s in pane.selected()] == [2]
