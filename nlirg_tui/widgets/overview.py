"""The Overview pane: the run at a glance, as btop or k9s show a machine. Loss and weighted loss, the zone
table and histogram, memory and tokens/s, the five worst flagged samples and the last acks, each in a box
titled with the key of its full pane (a click on the box opens it too). Everything is read from the store."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.widgets import Sparkline, Static

from nlirg_tui.panes import OVERVIEW_MIN_WIDTH, PANE_KEY
from nlirg_tui.series import resample
from nlirg_tui.state import RunState
from nlirg_tui.widgets.plot import Line, PlotSpec, SeriesPlot
from nlirg_tui.widgets.zones import histogram_spec, zone_table

GIB = 1 << 30
WORST = 5
"""Flagged samples listed (worst first)."""
ACKS = 5
"""Acks listed (newest last)."""
MEMORY_KEYS = (("allocated", "alloc"), ("reserved", "reserved"), ("peak", "peak"), ("rss", "cpu rss"))
"""Readings in the order the Memory pane shows them, with shorter headers."""


class Box(Vertical):
    """A titled box standing for one full pane: the title names the pane's key, a click opens it."""

    @dataclass
    class Jump(Message):
        pane: str

    def __init__(self, title: str, pane: str, **kwargs) -> None:
        super().__init__(classes="overview-box", **kwargs)
        self.pane = pane
        self.border_title = f"[b]{PANE_KEY[pane]}[/b] {title}"

    def on_click(self) -> None:
        self.post_message(self.Jump(self.pane))


SHORT_HEIGHT = 30
"""Below this many rows (an 80x24 terminal) the zone histogram is left out: it would be two rows of bars."""


class OverviewPane(Grid):
    """Six columns: Loss and Zones above, Memory, Flagged and Acks below. Narrower than OVERVIEW_MIN_WIDTH (80
    columns), the acks box is left out (the header shows the last ack, the Log pane all of them) so the flagged
    list keeps its line numbers and each title is whole; shorter than SHORT_HEIGHT, the zone histogram is."""

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < OVERVIEW_MIN_WIDTH, "-narrow")
        self.set_class(event.size.height < SHORT_HEIGHT, "-short")

    def compose(self) -> ComposeResult:
        with Box("Loss", "loss", id="ov-loss"):
            yield SeriesPlot(id="ov-loss-plot")
        with Box("Zones · last step's token losses", "zones", id="ov-zones"):
            yield Static(id="ov-zone-table")
            yield SeriesPlot(id="ov-hist")
        with Box("Memory (GiB) · tokens/s", "memory", id="ov-memory"):
            yield Static(id="ov-tps")
            yield SpeedSpark([], id="ov-tps-spark")
            yield Static(id="ov-memory-table")
        with Box("Worst flagged samples", "inspector", id="ov-flagged"):
            yield Static(id="ov-flagged-table")
        with Box("Last acks", "log", id="ov-acks"):
            yield Static(id="ov-acks-list")

    def update_from(self, state: RunState) -> None:
        self._loss(state)
        self.query_one("#ov-zone-table", Static).update(zone_table(state))
        self.query_one("#ov-hist", SeriesPlot).show(histogram_spec(state, ""))
        self._speed(state)
        self.query_one("#ov-memory-table", Static).update(memory_table(state))
        self.query_one("#ov-flagged-table", Static).update(flagged_table(state))
        self.query_one("#ov-acks-list", Static).update(acks_text(state))

    def _loss(self, state: RunState) -> None:
        lines = [Line(label, *series.points(), color) for label, series, color in
                 (("loss", state.loss, "red"), ("weighted", state.weighted_loss, "cyan"))]
        self.query_one("#ov-loss-plot", SeriesPlot).show(PlotSpec("", lines))
        self.query_one("#ov-loss", Box).border_subtitle = (
            f"loss {_num(state.loss.last)} · weighted {_num(state.weighted_loss.last)}")

    def _speed(self, state: RunState) -> None:
        tps = state.tokens_per_s.last
        self.query_one("#ov-tps", Static).update(
            Text.assemble("tokens/s ", (f"{tps:,.0f}" if tps is not None else "-", "bold")))
        self.query_one("#ov-tps-spark", SpeedSpark).show(*state.tokens_per_s.points())


class SpeedSpark(Sparkline):
    """Tokens/s resampled to one bar per column, again when its width changes: drawn before the pane had its size
    (a pane key pressed on a finished run), it would keep one bar for good."""

    points: tuple[list[float], list[float]] = ([], [])

    def show(self, xs: list[float], ys: list[float]) -> None:
        self.points = (xs, ys)
        self._resample()

    def on_resize(self) -> None:
        self._resample()

    def _resample(self) -> None:
        self.data = resample(*self.points, max(self.size.width, 1))[1]


def memory_table(state: RunState) -> Table | Text:
    """Per rank, in GiB, only the readings the run reports (a CPU run has no allocated/reserved)."""
    keys = [(k, label) for k, label in MEMORY_KEYS if any(k in m.latest for m in state.memory)]
    if not keys:
        return Text("no memory reading yet", style="dim")
    table = Table(box=None, expand=True, pad_edge=False)
    table.add_column("rank")
    for _, label in keys:
        table.add_column(label, justify="right")
    for rank, mem in enumerate(state.memory):
        table.add_row(str(rank), *(_num(_gib(mem.latest.get(k)), ".2f") for k, _ in keys))
    return table


def flagged_table(state: RunState) -> Table | Text:
    worst = state.flagged_worst_first()[:WORST]
    if not worst:
        return Text("no flagged samples yet", style="dim")
    table = Table(box=None, expand=True, pad_edge=False)
    table.add_column("zeroed", justify="right", no_wrap=True)
    table.add_column("mean loss", justify="right", no_wrap=True)
    # A long file name gives way (ellipsis), the line number never does: it is what the Data screen needs.
    table.add_column("source", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("line", justify="right", no_wrap=True)
    for s in worst:
        source = str(s.get("source") or "?").rsplit("/", 1)[-1]
        table.add_row(str(s.get("zeroed_tokens", 0)), _num(s.get("mean_loss"), ".3f"), source, str(s.get("line")))
    return table


def acks_text(state: RunState) -> Text:
    if not state.acks:
        return Text("no command sent yet (p pause · s save · l LR · n NLIRG)", style="dim")
    text = Text()
    for ack in list(state.acks)[-ACKS:]:
        text.append(ack + "\n", style="red" if "refused" in ack else "")
    return text


def _gib(value: object) -> float | None:
    return value / GIB if isinstance(value, (int, float)) else None


def _num(value: object, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"
