"""What a narrow terminal must not cut (issue 25): the flagged list's line numbers give way last."""

from __future__ import annotations

from rich.console import Console

from nlirg_tui.state import RunState
from nlirg_tui.widgets.overview import flagged_table


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
