"""What `nlirg runs / attach / stop / pause / resume / save / set` do; cli/live_runs.py only declares them.

Every user mistake (unknown run, run not live, refused command) becomes a one-line `LiveCommandError`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from trainer_core.config import ConfigError, NlirgParams, parse_override
from trainer_core.evaluate.experiment import ExperimentInfo
from trainer_core.live import protocol
from trainer_core.live.client import LiveClient, NotLive
from trainer_core.live.control import validate_command
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


def experiments_table(experiments: list[ExperimentInfo]) -> list[str]:
    """`nlirg runs`, after the runs: each experiment with its runs grouped under it."""
    lines: list[str] = []
    for exp in experiments:
        spec = exp.spec
        arms = ", ".join(map(str, spec.get("arms") or ["?"]))  # a hand-edited experiment.json may lack them
        lines += ["", f"EXPERIMENT {exp.name}  {exp.status}, {exp.done}/{len(exp.runs)} runs evaluated  "
                      f"({arms} x {spec.get('repeats', '?')}, {spec.get('model', '?')})  {exp.exp_dir}"]
        for slot in exp.runs:
            info = slot.info
            if info is None:
                lines.append(f"  {slot.name:<10}  pending")
                continue
            step = f"{info.step if info.step is not None else '-'}/{info.total_steps or '-'}"
            loss = f"{info.loss:.4f}" if isinstance(info.loss, (int, float)) else "-"
            lines.append(f"  {slot.name:<10}  {info.status:<9}  {step:<9}  {loss:<8}  seed {slot.seed}"
                         + ("  evaluated" if slot.evaluated else ""))
    return lines


# ---------------------------------------------------------------------------------------------- attach --stream
def format_event(event: dict[str, Any]) -> str:
    """One readable line per event for `nlirg attach --stream` (an unknown type prints as its JSON)."""
    line = _EVENT_LINES.get(event.get("type"))
    return line(event) if line is not None else json.dumps(event, ensure_ascii=False)


def _step_line(e: protocol.StepEvent) -> str:
    return (f"step {e.get('step')}/{e.get('total_steps')}  loss {_num(e.get('loss'))}  "
            f"wloss {_num(e.get('weighted_loss'))}  lr {_num(e.get('lr'), '.3g')}  "
            f"{_num(e.get('tokens_per_s'), '.0f')} tok/s  zones {e.get('zone_counts')}")


def _command_line(e: protocol.CommandEvent) -> str:
    return (f"command {e.get('name')} {json.dumps(e.get('args') or {})} from {e.get('source')} "
            f"at step {e.get('applied_at_step')}")


def _status_line(e: protocol.StatusEvent) -> str:
    if e.get("phase"):  # data preparation's progress
        return f"{e['phase']} data: {e.get('done')}/{e.get('total')} ({_num(e.get('samples_per_s'), '.0f')}/s)"
    return f"status {e.get('status')} at step {e.get('step')}"


def _eval_line(e: protocol.EvalEvent | protocol.GenerationEvalEvent) -> str:
    if e.get("kind") == "generation":  # eval.generate_every: answer metrics
        return (f"eval  step {e.get('step')}  accuracy {_num(e.get('domain_accuracy'))}  "
                f"repetition {_num(e.get('repetition_3gram'))}  json {_num(e.get('json_valid_rate'))}")
    return f"eval  step {e.get('step')}  loss {_num(e.get('eval_loss'))}"


def _end_line(e: protocol.EndEvent) -> str:
    summary = e.get("summary") or {}
    return f"end {e.get('status')}: {summary.get('steps', '-')} steps, final loss {_num(summary.get('final_loss'))}"


_EVENT_LINES: dict[str, Callable[[Any], str]] = {
    "step": _step_line,
    "eval": _eval_line,
    "status": _status_line,
    "command": _command_line,
    "checkpoint": lambda e: f"checkpoint step {e.get('step')}: {e.get('path')}",
    "flagged": lambda e: f"flagged {len(e.get('samples') or [])} sample(s) at step {e.get('step')}",
    "log": lambda e: f"log {e.get('level', '')} {e.get('message')}".replace("  ", " "),
    "error": lambda e: f"error {e.get('message')}",
    "chat": lambda e: (f"chat {e.get('model')} at step {e.get('step')}: {e.get('answer')!r}" if e.get("done")
                       else f"chat {e.get('model')} ... {e.get('text')!r}"),
    "end": _end_line,
}
"""A line for every event type of `protocol.EVENTS` (tests/test_live_cli.py checks that none is missing)."""


def _num(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def stream_events(run_dir: Path, echo: Echo, as_json: bool = False) -> str:
    """Print the run's whole history, then follow it live until `end`; returns the final status."""
    emit: Callable[[dict[str, Any]], None] = (
        (lambda e: echo(json.dumps(e, ensure_ascii=False))) if as_json else (lambda e: echo(format_event(e))))
    try:
        client = LiveClient.for_run(run_dir, notice=_to_stderr)
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


def _check_set(args: dict[str, Any], hello: dict[str, Any]) -> None:
    """The trainer's own check of `set`, here, against the run's NLIRG parameters from its hello: a refusal is
    one line, and NaN never reaches the wire (the encoder refuses it)."""
    try:
        current = NlirgParams(**(hello.get("config") or {}).get("nlirg", {}))
    except TypeError:  # a trainer of another version: its own check still answers
        current = NlirgParams()
    error = validate_command("set", args, current)
    if error is not None:
        raise LiveCommandError(f"set refused: {error}")


def send_command(run_dir: Path, name: str, args: dict[str, Any] | None = None, wait_end: bool = False,
                 timeout: float = 600.0) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Send one command to a live run; return (ack, end event if `wait_end`). Refusals raise LiveCommandError."""
    try:
        client = LiveClient.for_run(run_dir, timeout=timeout, notice=_to_stderr)
    except NotLive as exc:
        raise LiveCommandError(str(exc)) from None
    with client:
        if name == "set":
            _check_set(args or {}, client.hello)
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
            try:
                for msg in client.messages():
                    if msg.get("type") == "end":
                        end = msg
                        break
            except TimeoutError:
                raise LiveCommandError(f"{name} applied at step {ack.get('applied_at_step')}, but the run had not "
                                       f"ended {timeout:g} s later (a long save?); it ends on its own: `nlirg runs` "
                                       "shows when") from None
        return ack, end


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
