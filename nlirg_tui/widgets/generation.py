"""Generation metrics in the Loss pane: accuracy, repetition, distinct-2 and JSON validity over steps, and a
small table of where each started and where it is now. Hidden until the run streams any (eval.generate_every)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from nlirg_tui.generation_series import GenerationSeries
from nlirg_tui.widgets.plot import Line, PlotSpec, SeriesPlot

CURVES = (("domain_accuracy", "accuracy", "green"), ("repetition_3gram", "repetition", "red"),
          ("distinct_2", "distinct-2", "orange"), ("json_valid_rate", "JSON valid", "cyan"))
ROWS = (("domain_accuracy", "accuracy"), ("domain_exact_match", "exact match"), ("repetition_3gram", "repetition"),
        ("distinct_2", "distinct-2"), ("json_valid_rate", "JSON valid"), ("hit_limit_rate", "hit max len"))


def generation_table(gen: GenerationSeries) -> Table:
    table = Table(box=None, expand=True, pad_edge=False, title=f"answers at step {gen.latest.get('step')}")
    for col, justify in (("metric", "left"), ("start", "right"), ("now", "right"), ("change", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for key, label in ROWS:
        start, now = gen.first.get(key), gen.latest.get(key)
        change = f"{now - start:+.3f}" if _number(start) and _number(now) else "-"
        table.add_row(label, _fmt(start), _fmt(now), change)
    return table


class GenerationPanel(Horizontal):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.shown: dict[str, Any] | None = None
        """The generation event drawn last: the store changes on every step event, the answers only every
        eval.generate_every steps."""

    def compose(self) -> ComposeResult:
        yield SeriesPlot(id="gen-plot")
        yield Static(id="gen-table")

    def on_mount(self) -> None:
        self.display = False

    def update_from(self, gen: GenerationSeries) -> None:
        self.display = gen.seen
        if not gen.seen or gen.latest is self.shown:
            return
        self.shown = gen.latest
        lines = []
        for key, label, color in CURVES:
            xs, ys = gen.curves[key].points()
            lines.append(Line(label, xs, ys, color, "braille" if len(xs) > 1 else "dot"))
        self.query_one("#gen-plot", SeriesPlot).show(PlotSpec("Answers (share, 0-1)", lines))
        self.query_one("#gen-table", Static).update(generation_table(gen))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if _number(value) else "-"
