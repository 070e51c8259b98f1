"""Data quality: `nlirg score` (rate every record with a model, in a child process: docs/score.md), `nlirg
review` (the Data screen on a score file or a run's flagged samples) and `nlirg data cache`."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from nlirg_tui.cli.common import RootOpt, die, runs_root
from trainer_core.score.options import ScoreOptions, flag, option_types

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


def score(**options: Any) -> None:
    """Rate every record by the model's own per-token loss and entropy; quality in [0, 1], worst first."""
    cmd = [sys.executable, "-m", "trainer_core.score", *ScoreOptions(**options).argv()]
    env = {**os.environ, "NLIRG_SCORE_PARENT": str(os.getpid())}  # it dies with this process (score/lifetime.py)
    raise typer.Exit(subprocess.call(cmd, env=env))  # torch lives in that process, never in the CLI's


def _score_signature() -> inspect.Signature:
    """`score`'s parameters read from ScoreOptions (the one definition of the options), as typer reads them."""
    types, params = option_types(), []
    for f in fields(ScoreOptions):
        short = [f.metadata["short"]] if f.metadata["short"] else []
        meta = {"help": f.metadata["help"], "metavar": f.metadata["metavar"]}
        info = typer.Argument(**meta) if f.name == "data" else typer.Option(flag(f.name), *short, **meta)
        default = inspect.Parameter.empty if f.default is MISSING else f.default
        params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                        annotation=Annotated[types[f.name], info]))
    return inspect.Signature(params)


score.__signature__ = _score_signature()  # type: ignore[attr-defined]
commands.command()(score)


@commands.command()
def review(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A score file, a flagged.jsonl, or a run (its flagged samples).")],
    run: Annotated[str | None, typer.Option("--run", help="The run that `r` relaunches on the cleaned data.")]
    = None,
    root: RootOpt = None,
) -> None:
    """The Data screen: review records worst first, drop / keep / edit, write a cleaned copy, relaunch."""
    from nlirg_tui.live_commands import LiveCommandError, resolve
    from nlirg_tui.review_rows import ReviewFileError

    where, path = runs_root(ctx, root), Path(file)
    try:
        run_dir = resolve(run, where) if run else None
        if not path.exists():
            path = resolve(file, where)
        if path.is_dir() and run_dir is None:
            run_dir = path
        from nlirg_tui.app import run_review

        run_review(path, run_dir)
    except (LiveCommandError, ReviewFileError) as exc:
        die(str(exc))


data_app = typer.Typer(help="The data path: the cache of read and tokenized corpora.", no_args_is_help=True)
commands.add_typer(data_app, name="data")


@data_app.command("cache")
def data_cache(
    clear: Annotated[bool, typer.Option("--clear", help="Remove the named entries (all of them when none is named).")]
    = False,
    prune: Annotated[bool, typer.Option("--prune", help="Remove the entries no source can use any more (a file "
                                                         "changed or gone since it was read).")] = False,
    names: Annotated[list[str] | None, typer.Argument(help="Entries to clear (as listed).")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder (default: as data.cache_dir).")]
    = None,
) -> None:
    """List the data cache (entry, size, last used, what it holds), prune it with --prune, or clear it with --clear."""
    from trainer_core.data.cache import cache_root, list_entries
    from trainer_core.data.cache import clear as clear_entries
    from trainer_core.data.cache_prune import prune as prune_entries

    root = cache_root(str(cache_dir) if cache_dir else None)
    if prune and (clear or names):
        die("--prune removes the unused entries; name entries only with --clear")
    if prune:
        removed = prune_entries(root)
        typer.echo(f"pruned {len(removed)} unused entr{'y' if len(removed) == 1 else 'ies'} "
                   f"({_size(sum(e.size_bytes for e in removed))}) from {root}")
        return
    if clear:
        try:
            removed = clear_entries(root, names)
        except KeyError as exc:
            die(exc.args[0])
        freed = sum(e.size_bytes for e in removed)
        typer.echo(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({_size(freed)}) from {root}")
        return
    if names:
        die("name entries only with --clear")
    entries = list_entries(root)
    if not entries:
        typer.echo(f"no cached data under {root}")
        return
    for e in entries:
        typer.echo(f"{e.name:<32} {_size(e.size_bytes):>9}  used {_ago(e.last_used):>9}  {e.summary}")
    typer.echo(f"{len(entries)} entries, {_size(sum(e.size_bytes for e in entries))} under {root}")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _ago(t: float) -> str:
    s = max(0.0, time.time() - t)
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= span:
            return f"{s / span:.0f} {unit} ago"
    return f"{s:.0f} s ago"
