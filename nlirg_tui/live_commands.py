"""What `nlirg runs / attach / stop / pause / resume / save / set` do; cli.py only declares them.

Every user mistake (unknown run, run not live, refused command) becomes a one-line `LiveCommandError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from trainer_core.config import ConfigError, parse_override
from trainer_core.live import protocol
from trainer_core.live.client import LiveClient, NotLive
from trainer_core.live.events import read_events
from trainer_core.live.rundir import EVENTS_FILE
from trainer_core.live.runs import RunInfo, RunNotFound, find_runs, resolve_run, run_info

Echo = Callable[[str], None]


class LiveCommandError(Exception):
    """A one-line user error for the CLI to print before exiting with code 2."""


def resolve(spec: str, root: Path) -> Path:
    try:
        return resolve_run(spec, root)
    except RunNotFound as exc:
        raise LiveCommandError(str(exc)) from None


# ---------------------------------------------------------------------------------------------- runs
def runs_table(runs: list[RunInfo]) -> list[str]:
    """`nlirg runs`: one line per run, live ones first."""
    rows = [("NAME", "STATUS", "STEP", "LOSS", "STARTED", "WHERE")]
    for r in runs:
        step = f"{r.step if r.step is not None else '-'}/{r.total_steps if r.total_steps is not None else '-'}"
        loss = f"{r.loss:.4f}" if isinstance(r.loss, (int, float)) else "-"
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)) if r.started else "-"
        where = f"{r.host or '?'} pid {r.pid}" if r.live else str(r.run_dir)
        rows.append((r.run_dir.name, r.status, step, loss, started, where))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5] for row in rows]
    out = lines[:1]
    for line, r in zip(lines[1:], runs, strict=True):
        out.append(line)
        if r.error:
            out.append(f"  └ {r.error}")  # under its run: why it failed, or how to continue a dead one
    return out


def list_runs(root: Path) -> list[RunInfo]:
    return find_runs(root)


# ---------------------------------------------------------------------------------------------- attach --stream
def format_event(event: dict[str, Any]) -> str:
    """One readable line per event for `nlirg attach --stream`."""
    kind = event.get("type")
    if kind == "step":
        return (f"step {event.get('step')}/{event.get('total_steps')}  loss {_num(event.get('loss'))}  "
                f"wloss {_num(event.get('weighted_loss'))}  lr {_num(event.get('lr'), '.3g')}  "
                f"{_num(event.get('tokens_per_s'), '.0f')} tok/s  zones {event.get('zone_counts')}")
    if kind == "eval":
        return f"eval  step {event.get('step')}  loss {_num(event.get('eval_loss'))}"
    if kind == "status" and event.get("phase"):
        rate = _num(event.get("samples_per_s"), ".0f")
        return f"{event['phase']} data: {event.get('done')}/{event.get('total')} ({rate}/s)"
    if kind == "status":
        return f"status {event.get('status')} at step {event.get('step')}"
    if kind == "command":
        return (f"command {event.get('name')} {json.dumps(event.get('args') or {})} from {event.get('source')} "
                f"at step {event.get('applied_at_step')}")
    if kind == "checkpoint":
        return f"checkpoint step {event.get('step')}: {event.get('path')}"
    if kind == "flagged":
        return f"flagged {len(event.get('samples') or [])} sample(s) at step {event.get('step')}"
    if kind in ("log", "error"):
        return f"{kind} {event.get('level', '')} {event.get('message')}".replace("  ", " ")
    if kind == "end":
        summary = event.get("summary") or {}
        return (f"end {event.get('status')}: {summary.get('steps', '-')} steps, "
                f"final loss {_num(summary.get('final_loss'))}")
    return json.dumps(event, ensure_ascii=False)


def _num(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def stream_events(run_dir: Path, echo: Echo, as_json: bool = False) -> str:
    """Print the run's whole history, then follow it live until `end`; returns the final status."""
    emit: Callable[[dict[str, Any]], None] = (
        (lambda e: echo(json.dumps(e, ensure_ascii=False))) if as_json else (lambda e: echo(format_event(e))))
    try:
        client = LiveClient.for_run(run_dir)
    except NotLive:
        return _print_history(read_events(run_dir / EVENTS_FILE), emit, run_info(run_dir).status)
    with client:
        client.sock.settimeout(None)  # a paused run may stay quiet for hours
        for event in client.stream(0):
            emit(event)
            if event["type"] == "end":
                return str(event.get("status"))
    # The trainer went away without `end` (killed): trainer.json now says what became of it.
    return run_info(run_dir).status


def _print_history(events: Iterable[dict[str, Any]], emit: Callable[[dict[str, Any]], None], status: str) -> str:
    for event in events:
        emit(event)
    return status


# ---------------------------------------------------------------------------------------------- commands
def parse_set_pairs(pairs: list[str]) -> dict[str, Any]:
    if not pairs:
        raise LiveCommandError("set needs KEY=VALUE, e.g. `nlirg set RUN lr_scale=0.5 nlirg.k=2`")
    args: dict[str, Any] = {}
    for text in pairs:
        try:
            key, value = parse_override(text)
        except ConfigError as exc:
            raise LiveCommandError(str(exc).replace("--set ", "")) from None
        args[key] = value
    return args


def send_command(run_dir: Path, name: str, args: dict[str, Any] | None = None, wait_end: bool = False,
                 timeout: float = 600.0) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Send one command to a live run; return (ack, end event if `wait_end`). Refusals raise LiveCommandError."""
    try:
        client = LiveClient.for_run(run_dir, timeout=timeout)
    except NotLive as exc:
        raise LiveCommandError(str(exc)) from None
    with client:
        if wait_end:
            client.send(protocol.replay(client.hello["last_seq"] + 1))
        try:
            ack = client.command(name, args, timeout=timeout)
        except EOFError:
            raise LiveCommandError(f"{name}: the trainer closed the connection before answering; "
                                   f"`nlirg runs` shows what became of the run") from None
        except TimeoutError as exc:
            raise LiveCommandError(str(exc)) from None
        if not ack.get("ok"):
            raise LiveCommandError(f"{name} refused: {ack.get('error')}")
        end = None
        if wait_end:
            for msg in client.messages():
                if msg.get("type") == "end":
                    end = msg
                    break
        return ack, end
