"""The look of the main screens at 80x24 and 160x48 (the Overview at 120x40 and 160x48), from a fixed finished
run (no clocks, no live numbers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nlirg_tui.app import NlirgApp
from nlirg_tui.panes import PANE_KEY
from tests.tui.fixture_run import write_fixture_run

SIZES = [(80, 24), (160, 48)]


@pytest.fixture
def snap_run(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))  # the default theme, whatever the user chose
    monkeypatch.chdir(tmp_path)  # the Runs screen shows the root as given: `runs`
    return write_fixture_run(Path("runs"))


def replayed(*keys: str, events: tuple[dict, ...] = (), ack: tuple[str, dict] | None = None):
    """run_before: wait until the replay is drawn, add `events` (and this client's `ack`) to the run's store,
    press `keys`, then let the panes redraw."""

    async def run_before(pilot) -> None:
        screen = pilot.app.screen
        while getattr(screen, "link_mode", "replay") != "replay":
            await pilot.pause(0.05)
        if events:
            screen.state.ingest(list(events))
        if ack:
            screen.state.note_ack(*ack)
        await pilot.press(*keys)
        for field in pilot.app.screen.query("TextArea, Input"):
            field.cursor_blink = False  # a focused editor's cursor would be drawn or not by the clock
        if PANE_KEY["inspector"] in keys:  # the Inspector fills its table, then shows the worst sample: wait for both
            from nlirg_tui.widgets.inspector import TokenView

            for _ in range(200):
                if pilot.app.screen.query_one(TokenView).sample:
                    break
                await pilot.pause(0.05)
        await pilot.pause(1.0)  # generous: a loaded CI machine draws slowly, and a half-drawn pane is a diff
        if hasattr(pilot.app.screen, "redraw"):
            pilot.app.screen.redraw()
        await pilot.pause(0.5)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
# The Zones pane is left out: its SVG differs between runs by the export's content hash alone (same text and
# styles); see docs/tui.md. Its content is checked in test_store.py instead.
@pytest.mark.parametrize("pane", ["loss", "inspector", "memory", "config"])
def test_run_screen(snap_compare, snap_run, pane, size):
    assert snap_compare(NlirgApp(run_dir=snap_run.resolve()), terminal_size=size,
                        run_before=replayed(PANE_KEY[pane]))


@pytest.mark.parametrize("size", [(120, 40), (160, 48)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview(snap_compare, snap_run, size):
    """No key pressed: from 120 columns the Run screen opens on the Overview."""
    assert snap_compare(NlirgApp(run_dir=snap_run.resolve()), terminal_size=size, run_before=replayed())


HEADER_NOTES = (
    {"type": "log", "level": "warning", "message": "resumed from checkpoints/step-4 at step 4: lr 0.0002 -> 0.001, "
     "schedule cosine over 8 steps, LR now 0.0005"},
    {"type": "log", "level": "warning", "message": "special tokens zeroed: 80% of the zeroed tokens, most often "
     "'<|im_end|>' (id 2); set nlirg.protect_special_tokens: true"},
)
"""A resume note and the special-token warning: with an ack, more than an 80-column header holds."""


def test_overview_at_80x24(snap_compare, snap_run):
    """The 80x24 layout, decided (issue 25): the header keeps the run's numbers and the notes that fit whole
    (the rest counted, `+1 in 6 Log`); the Overview leaves out the acks box and the zone histogram, so the
    flagged list keeps its line numbers and every title is whole."""
    assert snap_compare(NlirgApp(run_dir=snap_run.resolve()), terminal_size=(80, 24),
                        run_before=replayed(PANE_KEY["overview"], events=HEADER_NOTES,
                                            ack=("save", {"ok": True, "applied_at_step": 60})))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_runs_screen(snap_compare, snap_run, size):
    shutil.copytree(snap_run, Path("runs") / "fixture-20250101-000001")
    assert snap_compare(NlirgApp(root=Path("runs")), terminal_size=size, run_before=replayed())


def test_nlirg_dialog(snap_compare, snap_run):
    assert snap_compare(NlirgApp(run_dir=snap_run.resolve()), terminal_size=(80, 24), run_before=replayed("n"))
