"""`nlirg serve`: the workbench in a browser (nlirg_tui/serve.py; docs/tui.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from nlirg_tui.cli.common import RootOpt, die, runs_root

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


@commands.command()
def serve(
    ctx: typer.Context,
    root: RootOpt = None,
    host: Annotated[str, typer.Option("--host", metavar="ADDR", help="Address to listen on (loopback only "
                                      "unless --allow-remote).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="N", help="TCP port.")] = 8000,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", metavar="",
                                               help="Listen on an address other machines reach.")] = False,
) -> None:
    """Open the workbench in a browser: serve it on HOST:PORT behind a token printed at start.

    From a laptop: ssh -L 8000:localhost:8000 BOX, then open the printed URL. Each tab runs its own workbench;
    Ctrl+C ends them all (runs keep training)."""
    from nlirg_tui import serve as served

    try:
        served.serve(runs_root(ctx, root).resolve(), host, port, allow_remote)
    except served.ServeError as exc:
        die(str(exc))
    except OSError as exc:
        die(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port")
