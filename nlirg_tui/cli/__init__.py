"""The `nlirg` command line (typer), one module per command group; never imports torch (training, scoring and
evaluation run in child processes).

`common` holds what every group shares (--root, --set, the demo's defaults); `training` (train, demo, check),
`cluster` (slurm), `planning` (plan), `data_quality` (score, review, data cache), `evaluation` (eval, ab), `export`
(export), `live_runs` (runs, attach, stop, pause, resume, save, set), `chat` (chat) and `serving` (serve) each
declare their commands, added here to the one app in this order (the order of --help).
"""

from __future__ import annotations

import sys

import typer

from nlirg_tui.cli import chat, cluster, data_quality, evaluation, export, live_runs, planning, serving, training
from nlirg_tui.cli.common import DEFAULT_ROOT, DEMO_DEFAULTS, RootOpt

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False, no_args_is_help=False, rich_markup_mode=None,  # plain help: flags show as flags
    help="NLIRG workbench: train, watch and steer. `nlirg` alone opens the workbench on the runs under --root.",
)
for group in (training, cluster, planning, data_quality, evaluation, export, live_runs, chat, serving):
    app.add_typer(group.commands)


@app.callback(invoke_without_command=True)
def home(ctx: typer.Context, root: RootOpt = None) -> None:
    """With no command, `nlirg` opens the workbench's Runs screen on --root (default ./runs)."""
    ctx.obj = {"root": root}
    if ctx.invoked_subcommand is None:
        from nlirg_tui.app import run_home

        run_home(root or DEFAULT_ROOT, DEMO_DEFAULTS)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
