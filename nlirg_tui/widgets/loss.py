"""The Loss pane: loss, weighted loss and eval loss over steps, the learning rate, and answer metrics when the run
generates (eval.generate_every)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from nlirg_tui.axis import short_sci
from nlirg_tui.lr_label import lr_label
from nlirg_tui.series import smooth
from nlirg_tui.state import RunState
from nlirg_tui.widgets.generation import GenerationPanel
from nlirg_tui.widgets.plot import Line, PlotSpec, SeriesPlot


class LossPane(Vertical):
    """Curves from the run store; `m` toggles smoothing, `g` the log scale (bound on the Run screen)."""

    smoothing: reactive[bool] = reactive(False, init=False)
    """Draw an exponential moving average instead of the raw points."""
    log_scale: reactive[bool] = reactive(False, init=False)
    """Log-scale y axis for the loss plot."""

    def compose(self) -> ComposeResult:
        yield Static(id="loss-summary", classes="pane-summary")
        yield SeriesPlot(id="loss-plot")
        yield SeriesPlot(id="lr-plot")
        yield GenerationPanel(id="gen-panel")

    def watch_smoothing(self) -> None:
        self._draw()

    def watch_log_scale(self) -> None:
        self._draw()

    def update_from(self, state: RunState) -> None:
        self._state = state
        self._draw()

    def _draw(self) -> None:
        state: RunState | None = getattr(self, "_state", None)
        if state is None:
            return
        step = state.latest_step
        eval_last = state.eval_loss.last
        self.query_one("#loss-summary", Static).update(
            f"loss {_fmt(step.get('loss'))}  weighted {_fmt(step.get('weighted_loss'))}  "
            f"eval {_fmt(eval_last)}  lr {lr_label(state)}  "
            f"[dim]m smoothing {'on' if self.smoothing else 'off'} · g log {'on' if self.log_scale else 'off'}[/]")
        lines = []
        for label, series, color in (("loss", state.loss, "red"), ("weighted", state.weighted_loss, "cyan"),
                                     ("eval", state.eval_loss, "green")):
            xs, ys = series.points()
            if self.smoothing and label != "eval":
                ys = smooth(ys)
            lines.append(Line(label, xs, ys, color, "braille" if label != "eval" else "dot"))
        self.query_one("#loss-plot", SeriesPlot).show(PlotSpec("Loss", lines, log_y=self.log_scale))
        xs, ys = state.lr.points()
        lr_plot = PlotSpec("LR", [Line("lr", xs, ys, "orange")], y_label=short_sci)
        self.query_one("#lr-plot", SeriesPlot).show(lr_plot)
        self.query_one(GenerationPanel).update_from(state.generation)


def _fmt(value: object, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) else "-"
