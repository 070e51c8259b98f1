"""Generation metrics of a run (eval events of kind `generation`, from `eval.generate_every`), kept as curves.

Part of the run store: `RunState` hands these events here; the Loss pane draws them.
"""

from __future__ import annotations

from typing import Any

from nlirg_tui.series import BoundedSeries
from trainer_core.evaluate.metrics import GENERATION_EVENT_KEYS


class GenerationSeries:
    """One bounded curve per metric, the first and the latest values, and the latest example answers."""

    def __init__(self) -> None:
        self.curves: dict[str, BoundedSeries] = {key: BoundedSeries() for key in GENERATION_EVENT_KEYS}
        self.first: dict[str, Any] = {}
        self.latest: dict[str, Any] = {}
        self.examples: list[dict[str, Any]] = []

    def ingest(self, event: dict[str, Any]) -> None:
        step = event.get("step", 0)
        for key, series in self.curves.items():
            series.append(step, event.get(key))
        if not self.first:
            self.first = event
        self.latest = event
        self.examples = list(event.get("examples") or [])

    @property
    def seen(self) -> bool:
        return bool(self.latest)

    def summary(self) -> str:
        got = self.latest
        return (f"step {got.get('step')}: accuracy {_pct(got.get('domain_accuracy'))}, "
                f"repetition {_num(got.get('repetition_3gram'))}, JSON {_pct(got.get('json_valid_rate'))}")


def _pct(value: Any) -> str:
    return f"{value * 100:.0f}%" if isinstance(value, (int, float)) else "-"


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"
