"""The Run screen's panes in key order: key N shows PANES[N] (0 the Overview, 1-6 the full panes)."""

from __future__ import annotations

PANES: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"), ("config", "Config"), ("zones", "Zones"), ("loss", "Loss"), ("memory", "Memory"),
    ("inspector", "Inspector"), ("log", "Log"),
)
"""(id, title) per pane; the index is the pane's key."""

PANE_KEY = {pane: str(i) for i, (pane, _) in enumerate(PANES)}
OVERVIEW_MIN_WIDTH = 120
"""Terminals at least this wide open on the Overview; narrower ones on the Loss pane."""


def default_pane(width: int) -> str:
    return "overview" if width >= OVERVIEW_MIN_WIDTH else "loss"
