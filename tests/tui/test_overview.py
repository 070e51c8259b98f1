"""The Overview pane (issue 14, item 12): the default at 120 columns and more, every box filled from the store
of a real run, each a key (or a click) away from its full pane. Its histogram's ticks: test_loss_axis.py.
Also what the store behind it gets from the live link: acks after their events, a replay past damaged lines."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from nlirg_tui.app import NlirgApp
from nlirg_tui.messages import LinkChanged
from nlirg_tui.panes import PANE_KEY
from nlirg_tui.screens.run import RunScreen
from nlirg_tui.state import RunState
from nlirg_tui.widgets.overview import WORST, OverviewPane
from nlirg_tui.widgets.plot import SeriesPlot
from tests.tui.conftest import acks_of, attach, axis_labels, shown, until
from trainer_core.config import build_config
from trainer_core.live import protocol
from trainer_core.live.client import LiveClient
from trainer_core.live.control import CommandQueue
from trainer_core.live.events import EventLog
from trainer_core.live.rundir import EVENTS_FILE
from trainer_core.live.server import LiveServer
from trainer_core.live.sockets import socket_path

pytestmark = pytest.mark.anyio


def test_the_store_keeps_applied_commands_and_refusals_as_acks():
    state = RunState()
    state.ingest([{"type": "command", "seq": 0, "name": "set", "args": {"lr_scale": 0.5}, "applied_at_step": 30}])
    state.note_sent("pause", "")
    assert state.last_ack == "pause: sent, waiting for the trainer"
    state.note_ack("pause", {"ok": False, "error": "the run has ended"})
    assert list(state.acks) == ["set lr_scale=0.5: ok at step 30", "pause: refused: the run has ended"]


@pytest.mark.slow
def test_an_ack_comes_after_the_events_its_command_emitted(shared_live_run):
    """The TUI takes the run's status and NLIRG knobs from the stream and the acks from the same connection: an
    ack that overtook its `status` event made a second `p` send `pause` again (a refusal), and one that overtook
    its `command` event showed the old NLIRG parameters after an ok `set`."""
    with LiveClient.for_run(shared_live_run) as client:
        client.send(protocol.replay(client.hello["last_seq"] + 1))
        try:
            before_pause = _before_ack(client, "order-pause", "pause")
            before_set = _before_ack(client, "order-set", "set", {"lr_scale": 1.0})
        finally:
            before_resume = _before_ack(client, "order-resume", "resume")  # the shared run goes on for the others
    assert ("status", "paused") in [(m["type"], m.get("status")) for m in before_pause]
    assert [m["id"] for m in before_set if m["type"] == "command"] == ["order-set"]
    assert ("status", "running") in [(m["type"], m.get("status")) for m in before_resume]


def _before_ack(client: LiveClient, cmd_id: str, name: str, args: dict | None = None) -> list[dict]:
    """Send a command; return what came on the connection before its (ok) ack."""
    client.send(protocol.command(cmd_id, name, args))
    before = []
    while (msg := client.read())["type"] != "ack" or msg["id"] != cmd_id:
        before.append(msg)
    assert msg["ok"], msg
    return before


async def test_a_replay_past_damaged_lines_goes_on_and_says_so_once(tmp_path):
    """A replay sends events.jsonl as written, junk lines included: the link used to raise on one, reconnect with
    the same `from_seq` and meet the same line again, for ever. The real server, in this process, on a real socket."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / EVENTS_FILE)
    events.emit("status", status="running", step=0, total_steps=10)
    with (run_dir / EVENTS_FILE).open("ab") as fh:  # a torn write and a person's edits between two events
        fh.write(b'12\n\x00garbage{\n{"v": 1, "type": "log", "seq": "x"}\n')
    events.emit("log", level="info", message="after the junk")
    trainer = SimpleNamespace(run_dir=run_dir, events=events, commands=CommandQueue(), status="running", step=0,
                              total_steps=10, cfg=build_config(None, ["model.path=builtin:tiny"]))
    server = LiveServer(trainer, socket_path(run_dir))
    server.start()
    seen: list = []

    def links() -> list[str]:
        return [m.mode for m in seen if isinstance(m, LinkChanged)]

    try:
        app = NlirgApp(run_dir=run_dir)
        async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
            screen = await until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen, "the Run screen")
            await until(pilot, lambda: screen.state.last_seq == 1 or "down" in links(), "the replay (or a drop)")
            events.emit("log", level="info", message="live")
            await until(pilot, lambda: screen.state.last_seq == 2 or "down" in links(), "a live event (or a drop)")
            assert "down" not in links(), [m.detail for m in seen if isinstance(m, LinkChanged)]
            assert [line for line in screen.state.log if "skipped" in line] == [
                f"warning: the live link skipped 3 line(s) that are no protocol message (3 in all): a damaged "
                f"{EVENTS_FILE}; the events around them are shown"]
            assert screen.link.bad_lines == 3
    finally:
        server.close()
        events.close()


@pytest.mark.parametrize(("width", "pane"), [(119, "loss"), (120, "overview")])
async def test_the_overview_is_the_default_from_120_columns(fixture_run, width, pane):
    app = NlirgApp(run_dir=fixture_run)
    async with app.run_test(size=(width, 40)) as pilot:
        await until(pilot, lambda: app.screen.link_mode == "replay", "the replay")
        assert app.screen.active_pane == pane


@pytest.mark.slow
async def test_overview_shows_the_live_run_at_a_glance_and_jumps_to_each_full_pane(shared_live_run):
    seen: list = []
    app = NlirgApp(run_dir=shared_live_run)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        screen = await attach(pilot, app)
        assert screen.active_pane == "overview"
        state = screen.state
        await until(pilot, lambda: len(state.flagged) >= WORST and state.memory, "flagged samples and memory")
        await pilot.press("p")
        await until(pilot, lambda: acks_of(seen, "pause"), "the pause ack")
        await pilot.press("p")
        await until(pilot, lambda: acks_of(seen, "resume"), "the resume ack")
        overview = screen.query_one(OverviewPane)
        pause_at, resume_at = (acks_of(seen, name)[0]["applied_at_step"] for name in ("pause", "resume"))
        acks = overview.query_one("#ov-acks-list")
        await until(pilot, lambda: f"resume: ok at step {resume_at}" in shown(acks), "the acks listed")
        assert f"pause: ok at step {pause_at}" in shown(acks)

        screen.redraw()
        await pilot.pause(0.3)
        loss = overview.query_one("#ov-loss-plot", SeriesPlot)
        assert [line.label for line in loss._spec.lines] == ["loss", "weighted"]
        assert all(len(line.xs) >= 2 for line in loss._spec.lines)
        assert re.search(r"loss \d+\.\d{4} · weighted \d+\.\d{4}", str(overview.query_one("#ov-loss").border_subtitle))
        zones = shown(overview.query_one("#ov-zone-table"))
        for row in ("easy-cut", "boost", "hard-cut", "zeroed", "grad share", "total"):
            assert row in zones
        b = state.bounds
        assert {f"{b.easy_max:g}", f"{b.hard_min:g}", f"{b.loss_deadline:g}"} <= set(
            axis_labels(overview.query_one("#ov-hist", SeriesPlot)))
        assert re.search(r"tokens/s [\d,]+", shown(overview.query_one("#ov-tps")))
        assert "cpu rss" in shown(overview.query_one("#ov-memory-table"))
        flagged = shown(overview.query_one("#ov-flagged-table")).splitlines()
        rows = [line.split() for line in flagged[1:] if line.strip()]
        assert len(rows) == WORST  # the five worst, zeroed-token counts first, worst first
        zeroed = [int(r[0]) for r in rows]
        assert zeroed == sorted(zeroed, reverse=True) and zeroed[0] >= 1
        assert all(r[-2] == "train.jsonl" and r[-1].isdigit() for r in rows)  # source and line, never cut

        for pane in ("zones", "loss", "memory", "inspector", "log"):  # each box a key away from its pane
            await pilot.press(PANE_KEY["overview"])
            assert screen.active_pane == "overview"
            await pilot.press(PANE_KEY[pane])
            assert screen.active_pane == pane
        await pilot.press(PANE_KEY["overview"])
        await pilot.click("#ov-memory")  # or a click on the box
        assert screen.active_pane == "memory"
