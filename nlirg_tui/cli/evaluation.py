"""`nlirg eval` (measure one model) and `nlirg ab` (a controlled experiment): the requests are checked here,
torch-free; the evaluator and the experiment's trainers are child processes (docs/evaluate.md)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from nlirg_tui.cli.common import (
    DEMO_DEFAULTS,
    MaxStepsOpt,
    RootOpt,
    SetOpt,
    die,
    given_root,
    run_config,
    runs_root,
)
from nlirg_tui.cli.training import check_data
from trainer_core.config import ConfigError

DomainOpt = Annotated[list[str] | None, typer.Option(
    "--domain", metavar="FILE", help="Held-out instructions with reference answers (any data format; repeatable).")]
GeneralOpt = Annotated[list[str] | None, typer.Option(
    "--general", metavar="FILE",
    help="General instructions with short references and/or general text (repeatable).")]
BaseOpt = Annotated[str | None, typer.Option(
    "--base", metavar="MODEL", help="Model general retention is measured against (default: the run's base model).")]
AB_DEFAULTS = [d for d in DEMO_DEFAULTS if not d.startswith("data.eval_fraction")] + ["data.eval=builtin:demo-heldout"]
"""`nlirg ab` without a config: the demo, its loss evaluated on the held-out set the experiment scores."""

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


def _problem_text(exc: Exception, squash: Callable[[str], str]) -> str:
    """A user error's message: a config's list of problems as its one block (`c.yaml: 3 problems` and a line
    each), any other error as `squash` makes it one line."""
    text = str(exc)
    return text if isinstance(exc, ConfigError) or "\n  - " in text else squash(text)


def _user_errors() -> tuple[type[Exception], ...]:
    from trainer_core.data.records import DataError
    from trainer_core.evaluate.experiment import ExperimentError
    from trainer_core.evaluate.targets import TargetError

    return ConfigError, DataError, ExperimentError, TargetError


@commands.command("eval")
def eval_(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(
        metavar="TARGET", help="A run (its final/), a checkpoint, a model or adapter folder, a hub id or a builtin.")],
    domain: DomainOpt = None,
    general: GeneralOpt = None,
    base: BaseOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", help="eval.json to write (default: next to the target).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, metavar="N", help="Longest answer.")]
    = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, metavar="N", help="Prompts generated together.")]
    = 8,
    limit: Annotated[int, typer.Option(
        "--limit", min=0, metavar="N", help="Score N items of each set, spread evenly (0 = all).")] = 0,
    root: RootOpt = None,
) -> None:
    """Measure a model: domain loss and answers, general retention, repetition and JSON validity (eval.json)."""
    from trainer_core.evaluate.commands import eval_arguments, prepare_eval

    try:
        req = prepare_eval(target, domain or [], general or [], base, out, runs_root(ctx, root))
    except _user_errors() as exc:
        die(_problem_text(exc, lambda text: text.splitlines()[0]))
    proc = subprocess.Popen(eval_arguments(req, max_new_tokens, batch_size, limit))
    while True:
        try:
            raise typer.Exit(proc.wait())
        except KeyboardInterrupt:
            continue  # the evaluator got the same SIGINT; it exits without writing eval.json


@commands.command()
def ab(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Argument(metavar="CONFIG", help="Run config YAML (default: the demo).")]
    = None,
    arms: Annotated[str, typer.Option(
        "--arms", metavar="ARMS", help="Weightings to compare: plain, nlirg, dft; nlirg@nf4 on a 4-bit base.")]
    = "plain,nlirg",
    repeats: Annotated[int, typer.Option(
        "--repeats", metavar="N", help="Runs per arm; repeat i uses seed training.seed + i.")] = 3,
    set_: SetOpt = None,
    max_steps: MaxStepsOpt = None,
    domain: DomainOpt = None,
    general: GeneralOpt = None,
    base: BaseOpt = None,
    gpus: Annotated[str | None, typer.Option(
        "--gpus", metavar="IDS", help="Run one run per GPU at a time, e.g. 0,1,2,3.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", metavar="N", help="Evaluate on N items of each set, spread evenly (0 = all).")] = 0,
    new: Annotated[bool, typer.Option(
        "--new", metavar="", help="Start a fresh experiment even if this one exists.")] = False,
    detach: Annotated[bool, typer.Option(
        "--detach", "-d", metavar="", help="Run in the background; print the folder.")] = False,
    root: RootOpt = None,
) -> None:
    """Controlled experiment: the same config per arm but nlirg.weighting, paired seeds, every run evaluated."""
    from trainer_core.evaluate.commands import experiment_complete, prepare_experiment
    from trainer_core.evaluate.runner import (
        RunFailed,
        experiment_busy_message,
        experiment_runner_pid,
        run_experiment,
        start_experiment_detached,
    )

    gpu_list = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    try:
        cfg = run_config(config, set_ or [], max_steps, AB_DEFAULTS, given_root(ctx, root))
        if gpu_list and cfg.distributed.backend == "deepspeed":
            die("--gpus runs one single-device run per GPU; a DeepSpeed config already uses its GPUs: drop --gpus")
        command = "nlirg " + shlex.join(sys.argv[1:])
        name = cfg.output.name or (config.stem if config else "demo")
        exp_dir, existed = prepare_experiment(cfg, arms, repeats, domain or [], general or [], base, command, name,
                                              new, limit, lambda: check_data(cfg))
    except _user_errors() as exc:
        die(_problem_text(exc, lambda text: text.replace("\n", " ")))
    if existed and experiment_complete(exp_dir):
        typer.echo((exp_dir / "report.md").read_text(encoding="utf-8"))
        typer.echo(f"{exp_dir} is complete; --new starts a fresh experiment", err=True)
        return
    busy = experiment_runner_pid(exp_dir)
    if busy is not None:  # the foreground runner refuses too; a detached one would start only to fail
        die(experiment_busy_message(exp_dir, busy))
    typer.echo(f"experiment {exp_dir} ({'continued' if existed else 'new'})", err=True)
    if detach:
        pid = start_experiment_detached(exp_dir, gpu_list)
        typer.echo(f"running in the background (pid {pid}); follow it with `nlirg runs` or the workbench")
        typer.echo(str(exp_dir))
        return
    try:
        raise typer.Exit(run_experiment(exp_dir, typer.echo, gpu_list))
    except RunFailed as exc:
        die(str(exc), code=1)
    except _user_errors() as exc:
        die(str(exc))
