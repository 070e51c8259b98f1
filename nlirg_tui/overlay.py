"""The Data screen's decisions (drop, keep, edit), kept in an overlay file beside the reviewed file and never in
the data itself: closing the screen loses nothing, and the data changes only when `w` writes a cleaned copy."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer_core.live.rundir import read_json, write_json_atomic

ACTIONS = ("drop", "keep", "edit")


@dataclass
class Decision:
    action: str
    """drop, keep or edit."""
    reason: str
    """Why (the row's quality and flags), for the changes log."""
    record: dict[str, Any] | None = None
    """edit: the whole edited record, in the file's own format."""
    note: str = ""
    """The reviewer's own words, if any."""


def overlay_path(review_file: Path) -> Path:
    """`scores.jsonl` -> `scores.overlay.json`; `runs/x/flagged.jsonl` -> `runs/x/flagged.overlay.json`."""
    return review_file.with_name(f"{review_file.stem}.overlay.json")


class Overlay:
    """Decisions by source (`file:line`), saved atomically on every change."""

    def __init__(self, path: Path):
        self.path = path
        saved = read_json(path) or {}
        self.decisions: dict[str, Decision] = {k: Decision(**v) for k, v in (saved.get("decisions") or {}).items()}

    def set(self, source: str, decision: Decision | None) -> None:
        if decision is None:
            self.decisions.pop(source, None)
        else:
            self.decisions[source] = decision
        self.save()

    def get(self, source: str) -> Decision | None:
        return self.decisions.get(source)

    def changes(self) -> dict[str, Decision]:
        """The decisions that change the data (keep changes nothing)."""
        return {k: d for k, d in self.decisions.items() if d.action != "keep"}

    def save(self) -> None:
        write_json_atomic(self.path, {"decisions": {k: asdict(d) for k, d in self.decisions.items()}})


def describe(decisions: dict[str, Decision]) -> str:
    counts = {a: sum(1 for d in decisions.values() if d.action == a) for a in ACTIONS}
    return "  ".join(f"{a} {n}" for a, n in counts.items())
