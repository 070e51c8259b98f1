"""The Data screen's rows from a run's flagged.jsonl and from score files: the trainer's zones kept (the run's
bounds, not the defaults); a row it cannot show is one error naming the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult

from nlirg_tui.review_rows import ReviewFileError, load_review
from nlirg_tui.widgets.inspector import TokenView
from nlirg_tui.widgets.record_view import SUSPECT_STYLE, RecordView, record_text, token_detail, token_style
from nlirg_tui.widgets.zones import ZONE_STYLES


def _flagged(tmp_path: Path, **changes: Any) -> Path:
    """One flagged sample of a run with `nlirg.loss_deadline: 6.95`: token 2 (loss 12) was zeroed, token 3 (loss 7)
    too; with the default deadline (15) both would be hard-zone tokens."""
    row = {"sample_id": 0, "step": 3, "source": str(tmp_path / "train.jsonl"), "line": 4, "id": None,
           "mean_loss": 6.5, "max_loss": 12.0, "zeroed_tokens": 2, "target_tokens": 3,
           "tokens": ["Q", ":", " ten", " eleven", "."], "losses": [None, None, 12.0, 7.0, 0.5],
           "weights": [None, None, 0.0, 0.0, 0.3], "zones": [None, None, 3, 3, 0], **changes}
    (tmp_path / "flagged.jsonl").write_text(json.dumps(row) + "\n")
    return tmp_path / "flagged.jsonl"


class _Views(App):
    def compose(self) -> ComposeResult:
        yield TokenView()
        yield RecordView()


@pytest.mark.anyio
async def test_a_new_sample_is_drawn_and_announced_once(tmp_path):
    """Moved drives the detail line below the view: twice per sample was a second render and a second detail."""
    row = load_review(_flagged(tmp_path)).rows[0]
    sample = json.loads((tmp_path / "flagged.jsonl").read_text())
    seen: list = []
    app = _Views()
    async with app.run_test(message_hook=seen.append) as pilot:
        app.query_one(RecordView).show_row(row)
        app.query_one(TokenView).show_sample(sample)
        await pilot.pause()
        app.query_one(TokenView).show_sample(sample)  # the same sample again: its cursor value does not change
        await pilot.pause()
    moved = {id(m): m for m in seen if isinstance(m, (TokenView.Moved, RecordView.Moved))}  # once per bubbling hop
    assert [(type(m).__qualname__, m.index) for m in moved.values()] == [
        ("RecordView.Moved", 2), ("TokenView.Moved", 2), ("TokenView.Moved", 2)]


def test_a_flagged_sample_is_coloured_by_the_trainers_zones(tmp_path):
    row = load_review(_flagged(tmp_path)).rows[0]
    assert row.loud == [2, 3]
    assert [token_style(row, i) for i in range(5)] == ["dim", "dim", ZONE_STYLES[3], ZONE_STYLES[3], ZONE_STYLES[0]]
    assert SUSPECT_STYLE not in str(record_text(row, 4).spans)
    assert "zeroed" in token_detail(row, 2).plain and "suspect" not in token_detail(row, 2).plain


SCORE_ROW = {"source": "data.jsonl:3", "id": None, "quality": 0.2, "score": 4.0, "flags": [], "tokens": ["a"],
             "losses": [1.0]}


@pytest.mark.parametrize(("rows", "words"), [
    ([SCORE_ROW, {**SCORE_ROW, "source": "data.jsonl"}], ["scores.jsonl:2:", "'data.jsonl' is not file:line"]),
    ([SCORE_ROW, {**SCORE_ROW, "quality": "high"}], ["scores.jsonl:2:", "'quality' is 'high', not a number"]),
    ([{"source": "data.jsonl", "line": None, "zones": []}], ["scores.jsonl:1:", "'line' is None, not a line number"]),
    ([{"source": "data.jsonl", "line": 2, "mean_loss": "x"}], ["scores.jsonl:1:", "'mean_loss' is 'x'"]),
])
def test_a_row_it_cannot_show_is_one_error_naming_the_line(tmp_path, rows, words):
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ReviewFileError) as caught:
        load_review(path)
    assert all(w in str(caught.value) for w in words) and "fix or remove the line" in str(caught.value)


def test_a_binary_file_is_one_error_naming_the_line(tmp_path):
    path = tmp_path / "scores.jsonl"
    path.write_bytes(json.dumps(SCORE_ROW).encode() + b"\n\x89PNG\r\n")
    with pytest.raises(ReviewFileError, match=r"scores.jsonl:2: not UTF-8 text"):
        load_review(path)
