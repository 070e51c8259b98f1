"""`nlirg train`, `nlirg demo` and `nlirg check`: a run checked (config, data, model) before its run directory
exists, then trained in the foreground with a progress bar or detached; `train --resume` continues a run;
`check` checks a config without making one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from nlirg_tui.cli.common import (
    DEFAULT_ROOT,
    DEMO_DEFAULTS,
    DetachOpt,
    MaxStepsOpt,
    RootOpt,
    SetOpt,
    die,
    given_root,
    run_config,
)
from trainer_core.config import ConfigError, RunConfig, build_config, save_config
from trainer_core.live.checkpoint_recovery import resume_point
from trainer_core.live.launch import EXIT_USER_ERROR, prepare_run, run_foreground, start_detached
from trainer_core.live.nodes import NodeError, NodeLaunch, resume_problem
from trainer_core.live.run_lock import RunBusy, busy_message, lock_holder
from trainer_core.live.rundir import CONFIG_FILE, checkpoint_dirs
from trainer_core.live.terminal import make_output_best_effort

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


@commands.command()
def train(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Argument(
        help="Run config YAML; its relative paths are read from its own folder (default: the "
        "embedded config, builtin:smollm2-135m + LoRA on the demo data, run name `train`).")] = None,
    set_: SetOpt = None,
    max_steps: MaxStepsOpt = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", metavar="RUN", help="Continue a run (directory, name or unique prefix) from its newest "
        "checkpoint, with the run's config as --set/--max-steps change it: the new LR and schedule apply from "
        "the resumed step.")] = None,
    keep_lr_scale: Annotated[bool, typer.Option(
        "--keep-lr-scale", metavar="", help="With --resume: keep the live lr_scale the checkpoint was trained "
        "with (default: back to 1).")] = False,
    detach: DetachOpt = False,
    merge_lora: Annotated[bool, typer.Option(
        "--merge-lora", metavar="", help="Also write the adapter merged into its base to final/merged (LoRA runs; "
        "with --resume too).")] = False,
    root: RootOpt = None,
    nnodes: Annotated[int | None, typer.Option(
        "--nnodes", metavar="N", help="Multi-node DeepSpeed, one launch per node: the number of nodes (with "
        "--node-rank, --master-addr, --master-port, --run-dir; or --resume RUN on every node to continue it; "
        "docs/deepspeed.md).")] = None,
    node_rank: Annotated[int, typer.Option("--node-rank", metavar="R", help="With --nnodes: this node's place, "
                                           "0 .. N-1; node 0 owns the run directory and the live socket.")] = 0,
    master_addr: Annotated[str, typer.Option("--master-addr", metavar="HOST", help="With --nnodes: node 0's "
                                             "address, reachable from every node.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option("--master-port", metavar="P", help="With --nnodes: a free TCP port "
                                             "on node 0.")] = 29500,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", metavar="DIR", help="With --nnodes: the run "
                                                 "directory, the same path on a shared file system on every "
                                                 "node.")] = None,
    node_wait: Annotated[float, typer.Option("--node-wait", metavar="S", help="With --nnodes: seconds a node "
                                             "waits for the others before it gives up.")] = 600.0,
) -> None:
    """Train a run: in the foreground with a progress bar, or --detach.

    Writes a run directory under --root (README: "A run directory")."""
    overrides = [*(set_ or []), *(["output.merge_lora=true"] if merge_lora else [])]
    if nnodes is not None:
        node = NodeLaunch(nnodes, node_rank, master_addr, master_port, node_wait)
        if resume is not None:
            _resume_node(resume, given_root(ctx, root) or DEFAULT_ROOT, overrides, max_steps, run_dir, node, config,
                         detach or keep_lr_scale)
        else:
            _train_node(config, overrides, max_steps, run_dir, node, detach)
        return
    if resume is not None:
        _resume(resume, given_root(ctx, root) or DEFAULT_ROOT, overrides, max_steps, detach, keep_lr_scale, config)
        return
    if keep_lr_scale:
        die("--keep-lr-scale goes with --resume RUN")
    _launch(config, overrides, max_steps, detach, "train", given_root(ctx, root))


@commands.command()
def demo(
    ctx: typer.Context,
    set_: SetOpt = None,
    max_steps: MaxStepsOpt = None,
    headless: Annotated[bool, typer.Option("--headless", metavar="",
                                           help="Train with a progress bar instead of the TUI.")] = False,
    detach: DetachOpt = False,
    root: RootOpt = None,
) -> None:
    """Train the demo: SmolLM2-135M + LoRA on the bundled data.

    60 steps: about 15 minutes on a CPU, a minute or two on a GPU; watched in the workbench unless --headless or
    --detach."""
    where = given_root(ctx, root)
    if not headless and not detach and sys.stdout.isatty():
        # The TUI never hosts the trainer: it starts detached, so quitting the TUI can leave it running.
        run_dir = _launch(None, set_ or [], max_steps, True, "demo", where, defaults=DEMO_DEFAULTS)
        from nlirg_tui.app import run_attached

        run_attached(run_dir)
        return
    _launch(None, set_ or [], max_steps, detach, "demo", where, defaults=DEMO_DEFAULTS)


@commands.command()
def check(
    config: Annotated[Path | None, typer.Argument(
        help="Run config YAML (default: the embedded config nlirg train uses without one).")] = None,
    set_: SetOpt = None,
) -> None:
    """Check a config before a run: the config, every data source (records, tokens, truncation, what data.exclude
    drops), the model's config and tokenizer, and the memory plan; no weights loaded, no run directory made.

    Exit code 0 when nothing would stop the run (warnings are printed), 2 on any problem."""
    overrides = set_ or []
    try:
        build_config(config, overrides)
    except ConfigError as exc:
        die(str(exc))
    command = [sys.executable, "-m", "trainer_core.train.check_config", *([str(config)] if config else [])]
    raise typer.Exit(subprocess.call([*command, *(x for o in overrides for x in ("--set", o))]))


def _train_node(config: Path | None, overrides: list[str], max_steps: int | None, run_dir: Path | None,
                launch: NodeLaunch, detach: bool) -> None:
    from nlirg_tui.node_train import train_node

    if detach or run_dir is None:
        die("--nnodes needs --run-dir DIR (the same on every node) and runs in the foreground, without --detach")
    try:
        cfg = run_config(config, overrides, max_steps, [])
        raise typer.Exit(train_node(cfg, config.stem if config else "train", run_dir, launch, check_data))
    except (ConfigError, NodeError) as exc:
        die(str(exc))


def _resume_node(run: str, root: Path, overrides: list[str], max_steps: int | None, run_dir: Path | None,
                 launch: NodeLaunch, config: Path | None, unsupported: bool) -> None:
    """`--resume RUN --nnodes N --node-rank R ...` on every node: node 0 recovers the newest whole checkpoint and
    saves the run's config (as a one-machine resume does); every node continues from that checkpoint."""
    from nlirg_tui.node_train import resume_node

    if unsupported or config is not None:
        die("--resume with --nnodes continues the run with its own config.yaml in the foreground: drop the CONFIG "
            "argument, --detach and --keep-lr-scale (change keys with --set)")
    found = _resolve_resume(run, root)
    if run_dir is not None and run_dir.expanduser().resolve() != found:
        die(f"--run-dir {run_dir} is not the run --resume {run} names ({found}); give one of them")
    problem = resume_problem(found, launch.nnodes)
    if problem:
        die(problem)
    checkpoint = _prepare_resume(found, overrides, max_steps)[0] if launch.node_rank == 0 else None
    try:
        raise typer.Exit(resume_node(found, launch, lambda: run_config(found / CONFIG_FILE, overrides, max_steps, []),
                                     checkpoint))
    except (ConfigError, NodeError) as exc:
        die(str(exc))


def _launch(config: Path | None, overrides: list[str], max_steps: int | None, detach: bool, name: str,
            root: Path | None, defaults: list[str] | None = None) -> Path:
    make_output_best_effort()  # the run outlives a closed pipe or terminal; so does this launcher
    try:
        cfg = run_config(config, overrides, max_steps, defaults or [], root)
    except ConfigError as exc:
        die(str(exc))
    check_data(cfg)
    check_hosts(cfg)
    run_dir = prepare_run(cfg, config.stem if config else name)
    if detach:
        pid = start_detached(run_dir)
        # A full path: the hint works from any folder, whatever --root was.
        typer.echo(f"trainer started (pid {pid}); follow it with: nlirg attach {run_dir}")
        typer.echo(str(run_dir))
        return run_dir
    typer.echo(f"run directory: {run_dir}", err=True)
    code = run_foreground(run_dir)
    if code == EXIT_USER_ERROR and not checkpoint_dirs(run_dir):
        # A config, data or model error before the first checkpoint: the error above says it all; keep no debris.
        shutil.rmtree(run_dir, ignore_errors=True)
        typer.echo(f"(nothing trained; {run_dir} removed)", err=True)
    raise typer.Exit(code)


def check_data(cfg: RunConfig) -> None:
    """Read and normalise every data source (cached: the trainer finds it done) before a run directory exists, so
    a malformed record is one line naming its file and line, exit code 2, and nothing left behind."""
    from nlirg_tui.data_check import check_run_inputs
    from trainer_core.config.model_source import ModelLoadError
    from trainer_core.data.records import DataError

    def progress(phase: str, done: int, total: int, seconds: float) -> None:
        typer.echo(f"{phase} data: {done}/{total} file(s), {seconds:.0f} s", err=True)

    try:
        check_run_inputs(cfg, progress)
    except (DataError, ModelLoadError) as exc:
        die(str(exc))


def check_hosts(cfg: RunConfig) -> None:
    """A hostfile + SSH launch (distributed.hostfile): every host resolves and answers SSH with the same workbench,
    and pdsh and ssh are here, or one line and exit code 2 before a run directory exists."""
    from trainer_core.live.hostfile import HostfileError, check_hostfile_launch

    try:
        check_hostfile_launch(cfg)
    except HostfileError as exc:
        die(str(exc))


def _refuse_live(run_dir: Path) -> None:
    """One line, exit 2, when a trainer trains `run_dir` now (its lock is held, or trainer.json's live process
    is still the one it names): a second trainer would share the folder with it."""
    from trainer_core.live.runs import run_info

    holder = lock_holder(run_dir)
    info = run_info(run_dir)
    if holder is not None or info.live:
        die(busy_message(run_dir, holder or info.pid))


def _resume(run: str, root: Path, overrides: list[str], max_steps: int | None, detach: bool,
            keep_lr_scale: bool, config: Path | None) -> None:
    make_output_best_effort()
    if config is not None:
        die(f"--resume continues a run with its own config.yaml; drop {config} (change keys with --set)")
    run_dir = _resolve_resume(run, root)
    problem = resume_problem(run_dir, None)
    if problem:
        die(problem)
    checkpoint, cfg = _prepare_resume(run_dir, overrides, max_steps)
    if detach:
        try:
            start_detached(run_dir, checkpoint, keep_lr_scale=keep_lr_scale)
        except RunBusy as exc:
            die(str(exc))
        typer.echo(f"trainer resumed; follow it with: nlirg attach {run_dir}")
        typer.echo(str(run_dir))
        return
    raise typer.Exit(run_foreground(run_dir, checkpoint, keep_lr_scale=keep_lr_scale))


def _resolve_resume(run: str, root: Path) -> Path:
    from nlirg_tui.live_commands import LiveCommandError, resolve

    try:
        return resolve(run, root)
    except LiveCommandError as exc:
        die(f"--resume {exc}")


def _prepare_resume(run_dir: Path, overrides: list[str], max_steps: int | None) -> tuple[Path, RunConfig]:
    """The checkpoint a resume continues from and the config it trains with (saved as the run's config.yaml)."""
    _refuse_live(run_dir)  # before anything touches its config or checkpoints
    checkpoint = resume_point(run_dir)  # finishes or undoes a save that a kill interrupted
    if checkpoint is None:
        die(f"--resume {run_dir}: no checkpoint to resume from")
    try:
        cfg = run_config(run_dir / CONFIG_FILE, overrides, max_steps, [])
    except ConfigError as exc:
        die(str(exc))
    _nothing_left(run_dir, checkpoint, cfg)  # a finished run: merge only, or say there is nothing to train
    check_data(cfg)
    check_hosts(cfg)
    save_config(cfg, run_dir / CONFIG_FILE)  # what the resumed run does, and nothing else (README "Resuming")
    return checkpoint, cfg


def _nothing_left(run_dir: Path, checkpoint: Path, cfg: RunConfig) -> None:
    """A completed run with no step left: `--merge-lora` writes final/merged and nothing else of the run changes
    (no trainer starts: summary, evaluation, start time and lr_scale stay); without it there is nothing to do."""
    from trainer_core.live.steps_left import finished_step

    step = finished_step(run_dir, checkpoint, build_config(run_dir / CONFIG_FILE), cfg)
    if step is None:
        return
    if not cfg.output.merge_lora:
        die(f"--resume {run_dir}: the run completed at step {step} and has no step left to train; raise "
            "--max-steps (or --set training.epochs=N) to train on, or add --merge-lora to write final/merged")
    typer.echo(f"{run_dir.name} completed at step {step}: merging final/ into final/merged (the run is otherwise "
               "left as it is)", err=True)
    code = subprocess.call([sys.executable, "-m", "trainer_core.train.merge_final", "--run-dir", str(run_dir)])
    raise typer.Exit(code)
