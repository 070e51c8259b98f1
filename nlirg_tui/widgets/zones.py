"""The Zones pane: target tokens per NLIRG zone (this step and cumulative), each zone's share of the gradient,
the token-loss histogram with the zone bounds drawn on it, and a zone-over-time heatmap."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from nlirg_tui.axis import loss_ticks
from nlirg_tui.series import resample
from nlirg_tui.state import ZONE_NAMES, RunState
from nlirg_tui.widgets.plot import PlotSpec, SeriesPlot
from trainer_core.live.protocol import LOSS_HIST_BINS, LOSS_HIST_WIDTH

ZONE_STYLES = ("#5B9BD5", "#62C073", "#E5B94E", "bold #FFFFFF on #C0392B")
ZONE_COLORS = ("#5B9BD5", "#62C073", "#E5B94E", "#C0392B")
SHADES = " ░▒▓█"


def zone_table(state: RunState) -> Table:
    step = state.latest_step
    counts = step.get("zone_counts") or [0] * 4
    totals = step.get("zone_counts_total") or [0] * 4
    shares = step.get("zone_grad_share") or [0.0] * 4
    table = Table(box=None, expand=True, pad_edge=False)
    for col in ("zone", "step", "total", "grad share"):
        table.add_column(col, justify="left" if col == "zone" else "right")
    for name, style, n, total, share in zip(ZONE_NAMES, ZONE_STYLES, counts, totals, shares, strict=False):
        table.add_row(Text(name, style=style), str(n), str(total), f"{(share or 0.0) * 100:5.1f}%")
    return table


def histogram_spec(state: RunState, title: str) -> PlotSpec:
    """The token-loss histogram with the zone bounds drawn and ticked (the Zones pane and the Overview)."""
    b = state.bounds
    bounds = (b.easy_max, b.hard_min, b.loss_deadline)
    x_max = LOSS_HIST_BINS * LOSS_HIST_WIDTH
    return PlotSpec(title, bars=state.loss_histogram(),
                    vlines=[(b.easy_max, "blue"), (b.hard_min, "orange"), (b.loss_deadline, "red")],
                    xlabel="token loss", xlim=(0.0, x_max), xticks=loss_ticks(bounds, x_max))


def heatmap(state: RunState, width: int) -> Text:
    """One row per zone, one column per time bucket, shade = the zone's share of that bucket's tokens."""
    text = Text()
    cols = max(width - 10, 8)
    for name, color, series in zip(ZONE_NAMES, ZONE_COLORS, state.zone_share, strict=True):
        xs, ys = series.points()
        _, ys = resample(xs, ys, cols)
        text.append(f"{name:>9} ", style=color)
        for y in ys:
            text.append(SHADES[min(int(y * (len(SHADES) - 1) + 0.5), len(SHADES) - 1)], style=color)
        text.append("\n")
    first = state.zone_share[0].xs[:1] or [0]
    text.append(f"{'':>9} step {int(first[0])} → {state.step}", style="dim")
    return text


class ZoneHeatmap(Static):
    """Redrawn on resize too: its columns are time buckets, as many as it is wide."""

    _state: RunState | None = None

    def show(self, state: RunState) -> None:
        self._state = state
        if self.size.width:  # not laid out yet: on_resize draws it
            self.update(heatmap(state, self.size.width))

    def on_resize(self) -> None:
        if self._state is not None:
            self.show(self._state)


class ZonesPane(Vertical):
    def compose(self) -> ComposeResult:
        with Horizontal(id="zones-top"):
            yield Static(id="zones-table")
            yield ZoneHeatmap(id="zones-heatmap")
        yield SeriesPlot(id="zones-hist")

    def update_from(self, state: RunState) -> None:
        self.query_one("#zones-table", Static).update(zone_table(state))
        self.query_one(ZoneHeatmap).show(state)
        spec = histogram_spec(state, "Token loss histogram (this step) · zone bounds")
        self.query_one("#zones-hist", SeriesPlot).show(spec)
