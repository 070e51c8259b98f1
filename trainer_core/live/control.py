"""Commands that steer a running trainer (docs/design.md §4): queued by the server or a signal handler,
applied by the loop at the next step boundary, each answered with an ack.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainer_core.config.live_set import LiveSet, live_set_problems, lr_scale_problems
from trainer_core.config.parse import _coerce
from trainer_core.config.schema import ConfigError, NlirgParams
from trainer_core.live.chat import ChatRequestError, parse_chat_args
from trainer_core.live.protocol import SETTABLE, Ack, CommandName, nlirg_key
from trainer_core.quoting import cut

AckSink = Callable[[Ack], None]


class CommandRefused(ValueError):
    """A well-formed command that does nothing in the run's state (pause when paused): acked ok false, with why."""


@dataclass
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    id: Any = None
    ack: AckSink | None = None
    """Called with the ack object once the command is applied (or refused)."""
    source: str = "client"


class CommandQueue:
    """Thread-safe queue between the server/signal handlers and the training loop."""

    def __init__(self) -> None:
        self._q: queue.Queue[Command] = queue.Queue()
        self.stop_requested = threading.Event()

    def put(self, cmd: Command) -> None:
        if cmd.name == "stop":
            self.stop_requested.set()
        self._q.put(cmd)

    def drain(self) -> list[Command]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float) -> Command | None:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            return None


def validate_command(name: CommandName, args: dict[str, Any], current: NlirgParams | None = None) -> str | None:
    """Why a command's args are wrong, or None. The server's reader thread calls it before queueing (after
    `protocol.parse_client_message` checked the name and that args is an object), so nothing a client sends
    reaches the training loop unchecked: `set` values against the config validator (with the run's `current`
    NLIRG parameters, for the checks that relate one to another; the defaults when not given)."""
    if name == "generate":
        try:
            parse_chat_args(args)
        except ChatRequestError as exc:
            return str(exc)
        return None
    if name != "set":
        return f"{name} takes no arguments" if args else None
    if not args:
        return "set needs at least one key, e.g. {\"lr_scale\": 0.5}"
    try:
        parse_set_args(args, current or NlirgParams())
    except ConfigError as exc:
        return "; ".join(exc.problems)
    return None


def parse_set_args(args: dict[str, Any], current: NlirgParams) -> LiveSet:
    """Validate `set` args (protocol.SETTABLE) against the live NLIRG params; return the change, typed.

    Types as the config file's (`_coerce`), values by the config sections' own checks plus finiteness
    (`config.live_set`)."""
    problems: list[str] = []
    nlirg_changes: dict[str, Any] = {}
    other: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in args.items():
        short = nlirg_key(key)
        canonical = f"nlirg.{short}" if short is not None else key
        if canonical not in SETTABLE:
            unknown.append(cut(key))
            continue
        before = len(problems)
        coerced = _coerce(value, SETTABLE[canonical], canonical, problems)
        if len(problems) == before:
            (nlirg_changes if short is not None else other)[short or key] = coerced
    if unknown:  # the settable keys said once, however many unknown keys a client sent
        more = " ..." if len(unknown) > MAX_UNKNOWN_NAMED else ""
        problems.append(f"{', '.join(unknown[:MAX_UNKNOWN_NAMED])}{more}: cannot be set on a running trainer; "
                        f"settable: {', '.join(SETTABLE)}")
    new = dataclasses.replace(current, **nlirg_changes)
    if "lr_scale" in other:
        problems += lr_scale_problems(other["lr_scale"])
    problems += live_set_problems(new, {k: v for k, v in other.items() if k in _TRAINING_KEYS},
                                  {k: v for k, v in other.items() if k in _TELEMETRY_KEYS})
    if problems:
        raise ConfigError(problems, "set")
    return LiveSet(new, **other)


MAX_UNKNOWN_NAMED = 5
"""Unknown `set` keys named in the refusal; the rest are counted as '...'."""
_TRAINING_KEYS = ("log_every", "eval_every", "save_every")
_TELEMETRY_KEYS = ("flag_threshold",)
