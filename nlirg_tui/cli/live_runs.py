"""`nlirg runs`, `attach`, and the live commands (`stop`, `pause`, `resume`, `save`, `set`) sent over a run's
socket; what they do is in nlirg_tui/live_commands.py (docs/live.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nlirg_tui.cli.common import RootOpt, RunArg, die, runs_root

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


@commands.command("runs")
def runs_(ctx: typer.Context, root: RootOpt = None) -> None:
    """List runs, live ones first, then experiments with their runs.

    Name, status, step/total, loss, started, where; under a failed or dead run, why."""
    from nlirg_tui.live_commands import experiments_table, list_runs, runs_table
    from trainer_core.evaluate.experiment import find_experiments

    where = runs_root(ctx, root)
    found, (experiments, unreadable) = list_runs(where), find_experiments(where)
    for line in unreadable:
        typer.echo(line, err=True)
    if not found and not experiments:
        typer.echo(f"no runs under {where} (start one with `nlirg train --detach`, or pass --root DIR)", err=True)
        return
    for line in (runs_table(found) if found else []) + experiments_table(experiments):
        typer.echo(line)


@commands.command()
def attach(
    ctx: typer.Context,
    run: RunArg,
    root: RootOpt = None,
    stream: Annotated[bool, typer.Option("--stream", metavar="", help="Print events as text instead of opening "
                                                                       "the TUI.")] = False,
    json_: Annotated[bool, typer.Option("--json", metavar="", help="With --stream: print raw protocol events.")]
    = False,
) -> None:
    """Open the workbench on a run, live or finished.

    Its whole history is replayed first, then live events follow."""
    from nlirg_tui.live_commands import LiveCommandError, resolve, stream_events

    try:
        run_dir = resolve(run, runs_root(ctx, root))
    except LiveCommandError as exc:
        die(str(exc))
    if not stream and not json_ and sys.stdout.isatty() and _open_workbench(run_dir):
        return
    stream_events(run_dir, typer.echo, as_json=json_)


def _open_workbench(run_dir: Path) -> bool:
    """The workbench on the run (`nlirg_tui.app.run_attached`); False when it cannot load: attach streams instead."""
    try:
        from nlirg_tui.app import run_attached
    except ImportError:
        return False
    run_attached(run_dir)
    return True


def _command(ctx: typer.Context, run: str, root: Path | None, name: str, args: dict[str, Any] | None = None,
             wait_end: bool = False) -> None:
    from nlirg_tui.live_commands import LiveCommandError, resolve, send_command

    try:
        run_dir = resolve(run, runs_root(ctx, root))
        ack, end = send_command(run_dir, name, args, wait_end=wait_end)
    except LiveCommandError as exc:
        die(str(exc))
    if end is not None:
        summary = end.get("summary") or {}
        typer.echo(f"{run_dir.name}: {end.get('status')} at step {summary.get('steps')}; summary in "
                   f"{run_dir / 'summary.json'}")
    else:
        typer.echo(f"{run_dir.name}: {name} applied at step {ack.get('applied_at_step')}")


@commands.command()
def stop(ctx: typer.Context, run: RunArg, root: RootOpt = None,
         no_wait: Annotated[bool, typer.Option("--no-wait", metavar="", help="Return once the stop is acked, "
                                                                              "without waiting for the run's end.")]
         = False) -> None:
    """Stop a live run at the next step, with a checkpoint.

    Writes summary.json (status stopped); waits for the run's end unless --no-wait."""
    _command(ctx, run, root, "stop", wait_end=not no_wait)


@commands.command()
def pause(ctx: typer.Context, run: RunArg, root: RootOpt = None) -> None:
    """Pause a live run at the next step boundary.

    Refused (exit 2) if it is paused already."""
    _command(ctx, run, root, "pause")


@commands.command("resume")
def resume_(ctx: typer.Context, run: RunArg, root: RootOpt = None) -> None:
    """Resume a paused run.

    Refused (exit 2) if it is running. A finished or dead run continues with: nlirg train --resume RUN."""
    _command(ctx, run, root, "resume")


@commands.command()
def save(ctx: typer.Context, run: RunArg, root: RootOpt = None) -> None:
    """Checkpoint a live run at the next step boundary."""
    _command(ctx, run, root, "save")


@commands.command("set")
def set_live(
    ctx: typer.Context,
    run: RunArg,
    pairs: Annotated[list[str], typer.Argument(metavar="KEY=VALUE", help="lr_scale, log_every, flag_threshold, "
                                               "eval_every, save_every, nlirg.<param>, nlirg.weighting.")],
    root: RootOpt = None,
) -> None:
    """Change settings of a live run from the next step on.

    Each change is recorded in the run's event log."""
    from nlirg_tui.live_commands import LiveCommandError, parse_set_pairs

    try:
        args = parse_set_pairs(pairs)
    except LiveCommandError as exc:
        die(str(exc))
    _command(ctx, run, root, "set", args)
