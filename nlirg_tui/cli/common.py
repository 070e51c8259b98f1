"""What every command group of `nlirg` shares: the options that mean the same everywhere (--root,
--set, --max-steps, --detach, RUN), the one-line user error and the demo's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from trainer_core.config import RunConfig, build_config

DEFAULT_ROOT = Path("runs")
"""Where run directories are looked for and, without a config's output.root, written."""

SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE",
    help="Override a config key, e.g. --set training.lr=1e-4; repeat it for more (--set a=1 --set b=2).")]
MaxStepsOpt = Annotated[int | None, typer.Option(
    "--max-steps", metavar="N", help="Stop after N optimizer steps (N >= 1; without it: training.epochs).")]
DetachOpt = Annotated[bool, typer.Option("--detach", "-d", metavar="",
                                         help="Run in the background (its own session); print the run dir last.")]
RootOpt = Annotated[Path | None, typer.Option(
    "--root", metavar="DIR", help="Folder holding the run directories (default: ./runs, or the config's "
    "output.root for a new run); also accepted before the command: nlirg --root DIR COMMAND.")]
RunArg = Annotated[str, typer.Argument(metavar="RUN", help="Run directory, run name, or a unique prefix of one.")]

DEMO_DEFAULTS = ["model.path=builtin:smollm2-135m", "data.train=builtin:demo", "data.eval_fraction=0.05",
                 "training.max_steps=60", "training.batch_size=4", "data.max_length=256",
                 "training.eval_every=20", "training.save_every=20"]
"""`nlirg demo` (and the workbench's New run without a config): SmolLM2-135M + LoRA on the bundled data."""


def die(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def given_root(ctx: typer.Context, root: Path | None) -> Path | None:
    """--root after the command, else --root before it (`nlirg --root DIR runs`), else None: a new run then goes
    to its config's output.root."""
    return root if root is not None else (ctx.obj or {}).get("root")


def runs_root(ctx: typer.Context, root: Path | None) -> Path:
    """The folder runs are looked up in: --root (after or before the command), else ./runs."""
    return given_root(ctx, root) or DEFAULT_ROOT


def run_config(config: Path | None, overrides: list[str], max_steps: int | None, defaults: list[str],
               root: Path | None = None) -> RunConfig:
    """The config file (its relative paths read from its own folder) with the defaults (the demo's, only without
    a config file), --set, and --max-steps last; `root` replaces output.root."""
    if max_steps is not None and max_steps < 1:
        die(f"--max-steps {max_steps}: give a number of optimizer steps >= 1; leave --max-steps out to train for "
            "training.epochs (a config's training.max_steps: 0 means that)")
    steps = [f"training.max_steps={max_steps}"] if max_steps is not None else []
    cfg = build_config(config, [*([] if config else defaults), *overrides, *steps])
    if root is not None:
        cfg.output.root = str(root)
    return cfg
