"""What a narrow terminal must not cut (issue 25): the flagged list's line numbers give way last; the run's
header wraps to a second line at 80 columns rather than cutting a resume note or an ack."""

from __future__ import annotations

import pytest
from rich.console import Console

from nlirg_tui.app import NlirgApp
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
