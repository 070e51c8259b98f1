"""The NLIRG dialog: weighting, thresholds and curve parameters, with a live plot of the weight curve.

It answers (once: see `Dialog`) with only the changed keys (the `set` command's args), or None when cancelled;
the values are checked with the trainer's own rules before anything is sent.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select

from nlirg_tui.screens.dialogs import Dialog
from nlirg_tui.weight_curve import curve
from nlirg_tui.widgets.plot import Line, PlotSpec, SeriesPlot
from trainer_core.config import NlirgParams
from trainer_core.config.choices import Weighting
from trainer_core.config.live_set import non_finite_problems

NUMBER_FIELDS = ("max_lr", "k", "x0", "loss_threshold", "fall_center", "fall_slope", "min_lr", "loss_deadline",
                 "easy_max", "hard_min")


class NlirgDialog(Dialog[dict[str, Any]]):
    BINDINGS = [Binding("ctrl+s", "apply", "apply")]

    def __init__(self, current: dict[str, Any]):
        super().__init__()
        known = {f.name for f in dataclasses.fields(NlirgParams)}
        self.current = NlirgParams(**{k: v for k, v in current.items() if k in known})

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog nlirg-dialog"):
            yield Label("NLIRG weighting (Enter or ctrl+s applies at the next step)", classes="dialog-question")
            with Grid(id="nlirg-fields"):
                yield Label("weighting")
                yield Select([(w, w) for w in typing.get_args(Weighting)], value=self.current.weighting,
                             allow_blank=False, id="weighting", compact=True)
                for name in NUMBER_FIELDS:
                    yield Label(name)
                    yield Input(repr(getattr(self.current, name)), id=name, compact=True)
            yield SeriesPlot(id="curve-plot")
            yield Label("", id="nlirg-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply", id="apply", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self._redraw()

    def edited(self) -> tuple[NlirgParams | None, list[str]]:
        values: dict[str, Any] = {"weighting": self.query_one("#weighting", Select).value}
        problems = []
        for name in NUMBER_FIELDS:
            text = self.query_one(f"#{name}", Input).value.strip()
            try:
                values[name] = float(text)
            except ValueError:
                problems.append(f"nlirg.{name}: expected a number, got {text!r}")
        if problems:
            return None, problems
        params = dataclasses.replace(self.current, **values)
        problems = non_finite_problems(params, "nlirg") or params.check()  # the live `set` check, as the trainer's
        return (params, []) if not problems else (None, problems)

    @on(Input.Changed)
    @on(Select.Changed)
    def _redraw(self) -> None:
        params, problems = self.edited()
        self.query_one("#nlirg-error", Label).update("\n".join(problems))
        if params is None:
            return
        xs, ys = curve(params)
        self.query_one("#curve-plot", SeriesPlot).show(PlotSpec(
            "weight vs token loss", [Line("w", xs, ys, "cyan")],
            vlines=[(params.easy_max, "blue"), (params.hard_min, "orange"), (params.loss_deadline, "red")]))

    def changes(self) -> dict[str, Any] | None:
        params, _ = self.edited()
        if params is None:
            return None
        before, after = dataclasses.asdict(self.current), dataclasses.asdict(params)
        return {f"nlirg.{k}": v for k, v in after.items() if before[k] != v}

    @on(Input.Submitted)
    @on(Button.Pressed, "#apply")
    def action_apply(self) -> None:
        changes = self.changes()
        if changes is None:
            self.notify("fix the values first", severity="error")
            return
        self.answer(changes)

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()
