"""App-wide messages: what the live link tells the screens. The link only posts these; it never touches a widget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message


@dataclass
class RunEvents(Message):
    """A batch of run events in seq order (replayed or live)."""

    events: list[dict[str, Any]]


@dataclass
class HelloReceived(Message):
    """The trainer's greeting on connect: name, status, step, resolved config, last seq."""

    hello: dict[str, Any]


@dataclass
class CommandAcked(Message):
    """The answer to a command this client sent (or a local refusal when there is no live link)."""

    name: str
    ack: dict[str, Any]


@dataclass
class LinkChanged(Message):
    """The link's state: `live`, `waiting` (trainer starting), `replay` (finished run), `down` (lost, retrying)
    or `dead` (the trainer is gone without finishing)."""

    mode: str
    detail: str = ""


@dataclass
class OpenRun(Message):
    """Show this run in place of the screen that posts it (a relaunch from the Run or Data screen); the app
    handles it, so screens never import each other to open one."""

    run_dir: Path
    standalone: bool
