"""A plotext plot fed with prepared lines: all data work happens in `show`, `render` only draws."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from textual_plotext import PlotextPlot

from nlirg_tui.axis import Y_AXIS_CELLS, Tick, fit_ticks, spread_ticks, step_ticks
from nlirg_tui.series import resample


@dataclass
class Line:
    label: str
    xs: list[float]
    ys: list[float]
    color: str = "blue"
    marker: str = "braille"


@dataclass
class PlotSpec:
    title: str = ""
    lines: list[Line] = field(default_factory=list)
    bars: tuple[list[float], list[float]] | None = None
    vlines: list[tuple[float, str]] = field(default_factory=list)
    log_y: bool = False
    xlabel: str = ""
    xlim: tuple[float, float] | None = None
    xticks: list[Tick] = field(default_factory=list)
    """Ticks in priority order (needs `xlim`); those the plot's width has no room for are left out."""
    y_label: Callable[[float], str] | None = None
    """How y ticks are labelled (e.g. `axis.short_sci` for an LR); None: plotext's own labels."""


class SeriesPlot(PlotextPlot):
    """Shows one `PlotSpec`; never more points than it has columns."""

    _spec: PlotSpec | None = None

    def on_resize(self) -> None:
        if self._spec is not None:
            self.show(self._spec)  # resampled for the new width

    def show(self, spec: PlotSpec) -> None:
        self._spec = spec
        plt = self.plt
        plt.clear_figure()
        plt.title(spec.title)
        width = max(self.size.width * 2, 40)  # braille: two points per cell
        drawn = False
        for line in spec.lines:
            xs, ys = resample(line.xs, line.ys, width)
            if spec.log_y:  # a log axis cannot show zero or negative values
                kept = [(x, y) for x, y in zip(xs, ys, strict=True) if y > 0]
                xs, ys = [x for x, _ in kept], [y for _, y in kept]
            if xs:
                plt.plot(list(xs), list(ys), label=line.label or None, color=line.color, marker=line.marker)
                drawn = True
        if spec.bars is not None:
            plt.bar(spec.bars[0], spec.bars[1], color="blue", width=0.4)
            drawn = True
        for x, color in spec.vlines:
            plt.vline(x, color)
        if spec.log_y and drawn:
            plt.yscale("log")
        if spec.xlabel:
            plt.xlabel(spec.xlabel)
        if spec.xlim is not None:
            plt.xlim(*spec.xlim)
            if spec.xticks:
                plt.xticks(*fit_ticks(spec.xticks, *spec.xlim, self.size.width - Y_AXIS_CELLS))
        self._axes(spec, drawn)
        self.refresh()

    def _axes(self, spec: PlotSpec, drawn: bool) -> None:
        """Whole-number step ticks, the spec's y labels, and 0..1 for an empty histogram (not plotext's -1..1)."""
        plt = self.plt
        xs = [x for line in spec.lines for x in line.xs]
        ys = [y for line in spec.lines for y in line.ys]
        if drawn and xs and spec.xlim is None and spec.bars is None and all(float(x).is_integer() for x in xs):
            ticks = step_ticks(min(xs), max(xs), self.size.width - Y_AXIS_CELLS)
            plt.xticks(ticks, [f"{t:.0f}" for t in ticks])
        if spec.y_label is not None and ys and not spec.log_y:
            rows = self.size.height - 4  # the title, the frame and the x labels take the rest
            ticks = spread_ticks(min(ys), max(ys), 4 if rows >= 8 else 2)  # labels a few rows apart, never on one
            plt.yticks(ticks, [spec.y_label(t) for t in ticks])
        if spec.bars is not None and not any(y > 0 for y in spec.bars[1]):
            plt.ylim(0, 1)
            plt.yticks([0, 1], ["0", "1"])
