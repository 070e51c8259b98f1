"""The Run screen's panes in key order: key N shows PANES[N - 1]."""

from __future__ import annotations

PANES: tuple[tuple[str, str], ...] = (
    ("config", "Config"), ("zones", "Zones"), ("loss", "Loss"), ("memory", "Memory"), ("inspector", "Inspector"),
    ("log", "Log"),
)
"""(id, title) per pane, in key order."""

PANE_KEY = {pane: str(i + 1) for i, (pane, _) in enumerate(PANES)}
