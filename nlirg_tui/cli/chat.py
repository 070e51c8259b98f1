"""`nlirg chat`: ask a run's model, live while it trains or from its final/ or a checkpoint (nlirg_tui/chat_session.py;
docs/chat.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from nlirg_tui.cli.common import RootOpt, RunArg, die, runs_root

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


@commands.command()
def chat(
    ctx: typer.Context,
    run: RunArg,
    root: RootOpt = None,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", metavar="TEXT",
                                               help="Answer this once and exit (else: an interactive loop).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", metavar="N")] = 128,
    temperature: Annotated[float, typer.Option("--temperature", metavar="T", help="0: greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option("--top-p", metavar="P")] = 1.0,
    system: Annotated[str | None, typer.Option("--system", metavar="TEXT", help="A system prompt.")] = None,
    reference: Annotated[str | None, typer.Option(
        "--reference", metavar="TEXT", help="The answer you expect: its tokens' loss and NLIRG zone are shown.")]
    = None,
    no_base: Annotated[bool, typer.Option("--no-base", metavar="", help="Skip the base model's answer.")] = False,
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", metavar="step-N",
                                                   help="Ask this checkpoint instead of the live run or final/.")]
    = None,
    export: Annotated[Path | None, typer.Option("--export", metavar="FILE", help="Write the run's chat history "
                                                "as training records (JSONL) and exit.")] = None,
    export_format: Annotated[str, typer.Option("--format", metavar="alpaca|messages")] = "alpaca",
) -> None:
    """Ask the run's model: live while it trains (answered at the next step, training goes on exactly), or its
    final/ or a checkpoint afterwards; a LoRA run's base model answers beside it. History: RUN/chat.jsonl."""
    from nlirg_tui.chat_session import ChatError, ChatSession, Printer
    from nlirg_tui.live_commands import LiveCommandError, resolve
    from trainer_core.live.chat import ChatRequestError, export_history, parse_chat_args

    where = runs_root(ctx, root)
    try:
        run_dir = resolve(run, where)
    except LiveCommandError as exc:
        die(str(exc))
    if export is not None:
        if export_format not in ("alpaca", "messages"):
            die(f"--format {export_format}: use alpaca or messages")
        try:
            count = export_history(run_dir, export, export_format)  # type: ignore[arg-type]
        except (ChatRequestError, OSError) as exc:
            die(str(exc))
        typer.echo(f"{count} exchanges written to {export} ({export_format}); train on it with data.train")
        return
    session = ChatSession(run_dir, where, checkpoint,
                          loading=lambda target: typer.echo(f"loading {target} (the run is not training)...", err=True))
    printer = Printer(lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))

    def one(text: str) -> str | None:
        """Ask once; the reason it was not answered, or None."""
        args = {"prompt": text, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p,
                "system": system, "reference": reference, "base": not no_base}
        try:
            session.ask(parse_chat_args({k: v for k, v in args.items() if v is not None}), printer)
        except (ChatRequestError, ChatError) as exc:
            return str(exc)
        return None

    try:
        if prompt is not None:
            if (problem := one(prompt)) is not None:
                die(problem)
            return
        typer.echo("ask the model; an empty line or Ctrl+D ends", err=True)
        while (text := _read_prompt()) is not None:
            if (problem := one(text)) is not None:
                typer.echo(f"error: {problem}", err=True)  # the loop goes on: ask again
    finally:
        session.close()


def _read_prompt() -> str | None:
    try:
        text = input("> ")
    except EOFError:
        return None
    return text if text.strip() else None
