"""Focus and keys on the Run screen (issue 14, item 9), against one shared real trainer on builtin:tiny: the
Config editor takes typing at once, digits in the editor are text, the Inspector's arrows move over tokens,
pane keys work from the sample list, every key says something, and the footer fits 80 columns. Dialogs that
answer once: test_dialogs.py."""

from __future__ import annotations

import pytest
from textual.widgets import Footer

from nlirg_tui.app import NlirgApp
from nlirg_tui.panes import PANE_KEY, PANES
from nlirg_tui.screens.keys_help import KeysDialog
from nlirg_tui.widgets.config_editor import ConfigEditor, ConfigPane
from nlirg_tui.widgets.inspector import FlaggedTable, InspectorPane, TokenView, target_positions
from tests.tui.conftest import acks_of, attach, notes, shown, until

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

RUN_KEYS = {"q", "p", "s", "x", "l", "n", "question_mark"}


def footer_keys(screen) -> set[str]:
    """The keys the footer shows: the screen's active bindings marked to be shown (Textual's public API)."""
    return {key for key, active in screen.active_bindings.items() if active.binding.show}


async def laid_out_footer(pilot, screen) -> list:
    """The footer's items once it has recomposed and been laid out (it does both after a focus change)."""
    footer = screen.query_one(Footer)
    return await until(pilot, lambda: (items := list(footer.children)) and all(w.region.width for w in items)
                       and items, "the footer laid out")


async def settle(pilot) -> None:
    await pilot.pause(0.3)  # the footer recomposes, a hidden widget hands on its focus: both after a refresh


async def test_config_editor_takes_typing_at_once_and_escape_hands_the_keys_back(shared_live_run):
    app = NlirgApp(run_dir=shared_live_run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await attach(pilot, app)
        await pilot.press("1")
        editor = screen.query_one(ConfigEditor)
        assert screen.focused is editor and editor.border_subtitle.startswith("editing")
        before = editor.text
        await pilot.press("3", "q", "p")  # text, not the Loss pane, quit or pause
        await settle(pilot)
        assert editor.text == "3qp" + before
        assert screen.active_pane == "config" and app.screen is screen
        assert not any(line.startswith("sent") for line in screen.state.log)
        keys = footer_keys(screen)
        assert "escape" in keys and not RUN_KEYS & set(keys)  # the footer shows only what works while typing
        await pilot.press("escape")
        await settle(pilot)
        assert screen.focused is screen.query_one(ConfigPane) and editor.border_subtitle == "Enter: edit"
        assert RUN_KEYS <= set(footer_keys(screen))
        await pilot.press("enter")
        assert screen.focused is editor
        await pilot.press("escape", "3")
        assert screen.active_pane == "loss"
        await pilot.press("1")
        assert screen.focused is editor  # back in the editor each time the pane is shown


async def test_inspector_arrows_pane_keys_from_the_sample_list_and_jumps_that_say_why_not(shared_live_run):
    seen: list = []
    app = NlirgApp(run_dir=shared_live_run)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await attach(pilot, app)
        await until(pilot, lambda: len(screen.state.flagged) >= 2, "two flagged samples")
        await pilot.press("5")
        table, view = screen.query_one(FlaggedTable), screen.query_one(TokenView)
        await until(pilot, lambda: view.sample and len(table.rows) >= 2, "the samples listed, one shown")
        assert screen.focused is table
        first, second = target_positions(view.sample)[:2]
        view.cursor = first
        await pilot.press("right")
        await settle(pilot)
        assert screen.active_pane == "inspector" and view.cursor == second  # a token, not the next pane
        await pilot.press("left")
        assert view.cursor == first
        # New flagged samples rebuild the list; the token under the cursor stays put (a rebuild's stale
        # highlight of row 0 used to reset it several times a second, so the arrows seemed not to work).
        inspector, shown_sample = screen.query_one(InspectorPane), view.sample
        zeroed = [i for i in target_positions(shown_sample) if shown_sample["zones"][i] == 3]
        view.cursor = parked = next(i for i in target_positions(shown_sample) if i != zeroed[0])  # not the reset
        rebuilt = inspector.samples
        # A new worst sample, as the trainer's next flagged event brings one (a long shared run's model has
        # learnt its 24 samples and flags no more): it takes row 0, where the stale highlight pointed.
        newcomer = {**shown_sample, "line": 10_000, "zeroed_tokens": (shown_sample.get("zeroed_tokens") or 0) + 1}
        screen.state.ingest([{"type": "flagged", "step": screen.state.step, "samples": [newcomer]}])
        await until(pilot, lambda: inspector.samples is not rebuilt, "the list rebuilt by a new flagged sample")
        assert inspector.samples[0]["line"] == 10_000
        await settle(pilot)
        assert view.sample["line"] == shown_sample["line"] and view.cursor == parked
        for pane, _ in PANES:  # every pane key from the sample list (they were dead there)
            await pilot.press(PANE_KEY["inspector"])
            assert screen.focused is table
            await pilot.press(PANE_KEY[pane])
            await settle(pilot)
            assert screen.active_pane == pane
            if pane == "config":
                await pilot.press("escape")  # out of the editor, where "5" would be text
        await pilot.press("5")
        view.focus()
        await settle(pilot)
        row = table.cursor_row
        key, move = ("down", 1) if row + 1 < table.row_count else ("up", -1)  # the shown sample may be the last
        await pilot.press(key)  # from the token view, the sample list still moves
        assert table.cursor_row == row + move and screen.focused is view
        # From the last zeroed token and the last target token (walking there key by key took minutes):
        targets = target_positions(view.sample)
        view.cursor = [i for i in targets if view.sample["zones"][i] == 3][-1]
        await pilot.press("]")
        view.cursor = targets[-1]
        await pilot.press("right")
        await until(pilot, lambda: "no zeroed token after this one" in notes(seen), "] saying there is none")
        await until(pilot, lambda: "no target token after this one" in notes(seen), "→ saying there is none")
        await pilot.press("2")
        await settle(pilot)
        assert screen.active_pane == "zones"  # from the token view too


async def test_every_key_gives_feedback_and_the_footer_fits_80_columns(shared_live_run):
    seen: list = []
    app = NlirgApp(run_dir=shared_live_run)
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        screen = await attach(pilot, app)
        wanted = {"loss": RUN_KEYS | {"m", "g"}, "overview": RUN_KEYS, "memory": RUN_KEYS,
                  "inspector": RUN_KEYS | {"left_square_bracket", "right_square_bracket", "space", "e"}}
        for pane, keys in wanted.items():
            screen.action_show_pane(pane)
            await settle(pilot)
            items = await laid_out_footer(pilot, screen)
            assert keys <= footer_keys(screen), (pane, sorted(footer_keys(screen)))
            assert all(w.region.right <= 80 for w in items), f"footer cut on {pane}"

        await pilot.press("p")
        assert "pause: sent" in screen.state.last_ack or "pause: ok" in screen.state.last_ack
        await until(pilot, lambda: acks_of(seen, "pause"), "the pause ack")
        await until(pilot, lambda: "pause: ok at step" in str(screen.query_one("#run-header").render()), "ack shown")
        await pilot.press("p")
        await until(pilot, lambda: acks_of(seen, "resume") and screen.state.status == "running", "resumed")

        await pilot.press("3", "m", "g")
        await settle(pilot)
        summary = shown(screen.query_one("#loss-summary"))
        assert "smoothing on" in summary and "log on" in summary
        await pilot.press("question_mark")
        dialog = await until(pilot, lambda: isinstance(app.screen, KeysDialog) and app.screen, "the key list")
        listed = "\n".join(shown(w) for w in dialog.query("Static"))
        for text in ("pause or resume", "show the Config pane", "next zeroed token", "leave the editor"):
            assert text in listed
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "the key list closed")

        await pilot.press("5")
        table = screen.query_one(FlaggedTable)
        await until(pilot, lambda: len(table.rows) >= 1, "a flagged sample listed")
        await pilot.press("space")
        assert table.border_subtitle == "1 marked · e exports them"
        await pilot.press("e")
        await until(pilot, lambda: any(n.startswith("exported 1 sample") for n in notes(seen)), "the export said")
