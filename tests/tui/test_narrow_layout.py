"""What a narrow terminal must not cut (issue 25): the flagged list's line numbers give way last; the run's
header shows each note whole or counts it towards the Log pane; at 80x24 the Overview leaves out the acks box and
the zone histogram."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.text import Text

from nlirg_tui.app import NlirgApp
from nlirg_tui.run_header import header_text, notes
from nlirg_tui.state import RunState
from nlirg_tui.widgets.overview import flagged_table
from tests.tui.conftest import shown, until


def test_the_flagged_list_cuts_a_long_file_name_never_its_line_number():
    state = RunState()
    sample = {"source": "/data/sft300.clean.json", "line": 215, "zeroed_tokens": 3, "mean_loss": 7.27,
              "tokens": [], "zones": []}
    state.ingest([{"type": "flagged", "step": 1, "samples": [sample]}])
    for width in (30, 36, 60):
        console = Console(width=width, record=True)
        console.print(flagged_table(state))
        row = console.export_text().splitlines()[1]
        assert row.rstrip().endswith("215"), (width, row)
        assert "sft" in row


@pytest.mark.anyio
async def test_at_80_columns_the_header_wraps_instead_of_cutting_the_resume_note(fixture_run):
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.link_mode == "replay", "the replay")
        screen.state.ingest([{"type": "log", "level": "warning", "message": "resumed from checkpoints/step-4 at step "
                              "4: lr 0.0002 -> 0.001, schedule cosine over 8 steps, LR now 0.0005"}])
        header = screen.query_one("#run-header")
        await until(pilot, lambda: "resumed" in str(header.render()), "the resume note in the header")
        await pilot.pause(0.2)
        text = " ".join(line.strip() for line in shown(header).splitlines())
        assert "resumed at 4: lr 0.0002 -> 0.001" in text and "step 60/60" in text


def _noted_state() -> RunState:
    state = RunState("sft300-smollm2")
    state.ingest([
        {"type": "log", "level": "warning", "message": "resumed from checkpoints/step-4 at step 4: lr 0.0002 -> "
         "0.001, schedule cosine over 8 steps, LR now 0.0005"},
        {"type": "log", "level": "warning", "message": "special tokens zeroed: 93% of the zeroed tokens, most often "
         "'<|im_end|>' (id 2); set nlirg.protect_special_tokens: true"}])
    state.note_ack("set", {"ok": False, "error": "nlirg.loss_deadline: 3.0 must be above nlirg.hard_min (4.0), "
                                                  "or the hard zone would be empty; raise it or lower hard_min"})
    return state


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_the_header_shows_each_note_whole_or_counts_it_towards_the_log(width):
    """At 80 columns the header cut the resume note and the ack mid-word (issue 25): each note is now on show
    whole, or left out and counted (`+N in 6 Log`, where every one of them is); one longer than a whole line
    is shortened at a word."""
    state = _noted_state()
    text = header_text(state, "running", width).plain
    lines = text.split("\n")
    assert len(lines) <= 2 and all(len(line) <= width for line in lines), lines
    assert lines[0].startswith(" sft300-smollm2  running  step 0")
    shown_notes = [n.plain for n in notes(state) if n.plain in text]
    for note in notes(state):
        if note.plain not in text and note.plain.endswith("lower hard_min"):  # the long ack, shortened
            head = next(part for line in lines for part in line.split("  ") if part.endswith("…"))
            assert note.plain.startswith(head[:-1].strip()) and note.plain[len(head[:-1].strip())] == " "
            shown_notes.append(note.plain)
    left = len(notes(state)) - len(shown_notes)
    assert (f"+{left} in 6 Log" in text) == (left > 0)
    if width >= 200:
        assert left == 0


@pytest.mark.anyio
async def test_at_80x24_the_overview_leaves_out_the_acks_box_and_keeps_the_line_numbers(fixture_run):
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.link_mode == "replay", "the replay", timeout=30)
        await pilot.press("0")
        flagged = screen.query_one("#ov-flagged-table")
        await until(pilot, lambda: "train.jsonl" in shown(flagged), "the flagged list drawn", timeout=30)
        assert not screen.query_one("#ov-acks").display  # the last ack is in the header, all of them in the Log
        assert not screen.query_one("#ov-hist").display  # two rows of bars tell nothing
        rows = shown(flagged).splitlines()
        assert rows[0].split() == ["zeroed", "mean", "loss", "source", "line"]
        assert [row.split()[-1] for row in rows[1:4]] == ["12", "30", "7"]
        for box in screen.query(".overview-box"):  # every title whole, with the border's corners beside it
            assert not box.display or box.size.width >= len(Text.from_markup(box.border_title).plain) + 4, box.id
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: screen.query_one("#ov-acks").display, "the acks box back at 120 columns",
                    timeout=30)
