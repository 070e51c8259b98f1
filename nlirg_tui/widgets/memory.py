"""The Memory pane: GPU allocated/reserved/peak per rank (CPU RSS where there is no GPU; in a multi-node run each
rank's node and host too), tokens/s and MFU (model FLOPs utilisation: near 40-60% a run is compute-bound; far
below, something else holds it back), and how the base's weights are held (`base nf4 (4-bit)` under QLoRA)."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from nlirg_tui.state import RunState
from nlirg_tui.widgets.plot import Line, PlotSpec, SeriesPlot

GIB = 1 << 30


def memory_table(state: RunState) -> Table:
    """One row per rank; a multi-node run's rows also say each rank's node (`--node-rank`) and host."""
    table = Table(box=None, expand=True, pad_edge=False)
    places = [(mem.latest.get("node_rank"), mem.latest.get("host")) for mem in state.memory]
    nodes = len(set(places)) > 1
    for col in ("rank", *(("node", "host") if nodes else ()), "allocated", "reserved", "peak", "cpu rss"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for rank, (mem, (node, host)) in enumerate(zip(state.memory, places, strict=True)):
        r = mem.latest
        where = (str(node if node is not None else "-"), str(host or "-")) if nodes else ()
        table.add_row(str(rank), *where, *(_gib(r.get(k)) for k in ("allocated", "reserved", "peak", "rss")))
    base = state.latest_step.get("base_weights")
    table.caption = throughput_caption(state) + (f" · base {base}" if base else "")
    return table


def throughput_caption(state: RunState) -> str:
    """`tokens/s 12,345 · MFU 41.2% · 312.0 TFLOP/s` from the last step event (MFU - without a device peak)."""
    tps = state.tokens_per_s.last
    parts = [f"tokens/s {tps:,.0f}" if tps is not None else "tokens/s -"]
    mfu, tflops = state.latest_step.get("mfu"), state.latest_step.get("model_tflops")
    parts.append(f"MFU {mfu:.1%}" if isinstance(mfu, (int, float)) else "MFU -")
    if isinstance(tflops, (int, float)):
        parts.append(f"{tflops:,.1f} TFLOP/s" if tflops >= 0.1 else f"{tflops * 1e3:,.1f} GFLOP/s")
    return " · ".join(parts)


class MemoryPane(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(id="memory-table")
        yield SeriesPlot(id="memory-plot")
        yield SeriesPlot(id="tps-plot")

    def update_from(self, state: RunState) -> None:
        self.query_one("#memory-table", Static).update(memory_table(state))
        lines = []
        colors = ("cyan", "magenta", "green", "yellow", "red", "blue", "orange", "white")
        for rank, mem in enumerate(state.memory):
            series = mem.allocated if len(mem.allocated) else mem.rss
            xs, ys = series.points()
            label = f"rank {rank} {'allocated' if series is mem.allocated else 'rss'} GiB"
            lines.append(Line(label, xs, [y / GIB for y in ys], colors[rank % len(colors)]))
        self.query_one("#memory-plot", SeriesPlot).show(PlotSpec("Memory (GiB)", lines))
        xs, ys = state.tokens_per_s.points()
        self.query_one("#tps-plot", SeriesPlot).show(PlotSpec("tokens/s", [Line("tokens/s", xs, ys, "green")]))


def _gib(value: object) -> str:
    return f"{value / GIB:.2f} GiB" if isinstance(value, (int, float)) else "-"
