"""`nlirg plan`: the predicted peak GPU memory of a config, from the model's config.json alone (docs/plan.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nlirg_tui.cli.common import RootOpt, SetOpt, die, run_config
from nlirg_tui.plan_view import render_plan
from trainer_core.config import ConfigError
from trainer_core.plan import ShapeError, gpu_memory_bytes, parse_memory, plan_config

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


@commands.command()
def plan(
    config: Annotated[Path | None, typer.Argument(help="Run config YAML, as for nlirg train (default: the "
                                                  "embedded config).")] = None,
    set_: SetOpt = None,
    gpu_mem: Annotated[str | None, typer.Option("--gpu-mem", metavar="SIZE", help="Memory of one GPU, e.g. 24GB "
                                                "or 80GiB.")] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", metavar="NAME", help="A known GPU: H100, A100-40GB, L40S, "
                                            "4090, 3090, A10, T4, ...")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", metavar="N", help="GPUs (DeepSpeed ZeRO over N ranks; "
                                             "default: the config's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print one JSON object.")] = False,
    root: RootOpt = None,
) -> None:
    """Predict the peak GPU memory of a config before anything loads (reads the model's config.json only), and
    what makes it fit (docs/plan.md). Exit 0 when it fits (or no GPU size was given), 1 when it does not."""
    if gpu_mem and gpu:
        die("give --gpu-mem or --gpu, not both")
    if gpus is not None and gpus < 1:
        die(f"--gpus {gpus}: give at least 1")
    try:
        limit = parse_memory(gpu_mem) if gpu_mem else gpu_memory_bytes(gpu) if gpu else None
        result = plan_config(run_config(config, set_ or [], None, [], root), limit, gpus)
    except (ConfigError, ShapeError, ValueError, OSError) as exc:
        die(str(exc))
    typer.echo(json.dumps(result.to_json()) if as_json else render_plan(result))
    raise typer.Exit(0 if result.fits else 1)
