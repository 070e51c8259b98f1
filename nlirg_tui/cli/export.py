"""`nlirg export RUN`: the run's model as a Hugging Face folder, a GGUF file or an Ollama model (docs/export.md).

The arguments are checked here, torch-free, so a bad RUN, --dtype or --out is one line and exit 2 before anything
loads; the export itself runs in `python -m trainer_core.export`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from nlirg_tui.cli.common import RootOpt, die, runs_root
from trainer_core.export.plan import FORMATS, GGUF_DTYPES, ExportError, plan_export

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


@commands.command()
def export(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(metavar="RUN", help="A run (its final/), a run's final/ or a checkpoint.")],
    to: Annotated[str, typer.Option("--to", metavar="FORMAT", help=f"{' | '.join(FORMATS)}.")] = "hf",
    dtype: Annotated[str | None, typer.Option(
        "--dtype", metavar="TYPE", help=f"hf: f32 | f16 | bf16 (default f32); gguf/ollama: {' | '.join(GGUF_DTYPES)} "
        "(default f16 for gguf, q8_0 for ollama).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Folder to create (default: RUN/exports/FORMAT-TYPE); must not exist.")] = None,
    adapter: Annotated[bool, typer.Option(
        "--adapter", metavar="", help="hf of a LoRA run: the adapter and its base's name, not a merged model.")]
    = False,
    root: RootOpt = None,
) -> None:
    """Export a run's model: a Hugging Face folder, one GGUF file, or an Ollama Modelfile + GGUF; each with a
    model card (README.md). Prints the `hf upload` command that pushes it."""
    where = runs_root(ctx, root)
    try:
        plan_export(run, to, dtype, out, where, adapter)
    except ExportError as exc:
        die(str(exc))
    cmd = [sys.executable, "-m", "trainer_core.export", run, "--to", to, "--root", str(where)]
    cmd += (["--dtype", dtype] if dtype else []) + (["--out", str(out)] if out else []) + (["--adapter"] if adapter
                                                                                           else [])
    raise typer.Exit(subprocess.call(cmd))  # torch lives in that process, never in the CLI's
