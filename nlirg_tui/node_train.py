"""`nlirg train CONFIG --nnodes N --node-rank R --master-addr HOST --master-port P --run-dir DIR` (and `nlirg train
--resume RUN --nnodes N ...`): this node's share of a multi-node DeepSpeed run (docs/deepspeed.md, "Several
machines"; the meeting: trainer_core.live.nodes; how a node's launch ended: trainer_core.live.node_end).
Torch-free."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from trainer_core.config import RunConfig
from trainer_core.live.launch import EXIT_USER_ERROR, absolute_paths, prepare_run, run_node_foreground
from trainer_core.live.node_end import explain_node_exit, mark_node_ended
from trainer_core.live.nodes import (
    NodeError,
    NodeLaunch,
    announce_node,
    join_as_worker,
    last_attempt,
    wait_for_workers,
    write_hostfile,
)


def say(line: str) -> None:
    typer.echo(line, err=True)


def train_node(cfg: RunConfig, name: str, run_dir: Path, launch: NodeLaunch,
               check_data: Callable[[RunConfig], None]) -> int:
    """A new run: meet the other nodes (bounded), then run this node's ranks; the exit code of DeepSpeed's
    launcher."""
    check_launch(cfg, launch)
    run_dir = run_dir.expanduser().resolve()
    absolute_paths(cfg)
    if launch.node_rank == 0:
        if (run_dir / "config.yaml").exists():
            raise NodeError(f"node 0: {run_dir} holds a run already; name a new --run-dir on every node (or "
                            f"continue it on every node with --resume {run_dir})")
        check_data(cfg)
        prepare_run(cfg, name, at=run_dir)
        write_hostfile(run_dir, launch, cfg.distributed.num_procs)
        return lead_node(run_dir, launch, cfg, None)
    join_as_worker(run_dir, launch, lambda: cfg, False, say)
    return run_ranks(run_dir, launch, cfg.distributed.num_procs, None)


def resume_node(run_dir: Path, launch: NodeLaunch, config: Callable[[], RunConfig],
                checkpoint: Path | None) -> int:
    """`--resume` on every node: node 0 (which found `checkpoint` and saved the run's config) leads; another node
    builds its config once node 0's is written and continues from the checkpoint node 0 names."""
    if launch.node_rank == 0:
        cfg = config()
        check_launch(cfg, launch)
        return lead_node(run_dir, launch, cfg, checkpoint)
    lead = join_as_worker(run_dir, launch, config, True, say)
    return run_ranks(run_dir, launch, config().distributed.num_procs, Path(lead["resume"]))


def check_launch(cfg: RunConfig, launch: NodeLaunch) -> None:
    problems = launch.problems()
    if cfg.distributed.backend != "deepspeed":
        problems.append("--nnodes/--node-rank run DeepSpeed's per-node launcher: set distributed.backend=deepspeed")
    if problems:
        raise NodeError("; ".join(problems))


def lead_node(run_dir: Path, launch: NodeLaunch, cfg: RunConfig, checkpoint: Path | None) -> int:
    """Node 0: the data once into the shared cache, a new attempt announced, every other node awaited, then its
    ranks. A failure before the ranks start still ends the attempt, so no node joins it later."""
    attempt = last_attempt(run_dir, 0) + 1
    say(f"node 0: preparing the data once into the shared cache for {run_dir}")
    warm = subprocess.run([sys.executable, "-m", "trainer_core.train.data.warm", "--run-dir", str(run_dir)])
    if warm.returncode != 0:
        return warm.returncode if warm.returncode == EXIT_USER_ERROR else 1
    announce_node(run_dir, launch, cfg, attempt, data_ready=True, resume=str(checkpoint) if checkpoint else None)
    try:
        wait_for_workers(run_dir, launch, attempt, say)
    except NodeError as exc:
        mark_node_ended(run_dir, 0, EXIT_USER_ERROR, str(exc))
        raise
    return run_ranks(run_dir, launch, cfg.distributed.num_procs, checkpoint)


def run_ranks(run_dir: Path, launch: NodeLaunch, procs: int, checkpoint: Path | None) -> int:
    """This node's ranks through DeepSpeed's per-node launcher; when it fails, one last line says why (which node
    and rank), and the node's file records it."""
    say(f"node {launch.node_rank}: starting {procs} rank(s); master {launch.master_addr}:{launch.master_port}; run "
        f"directory {run_dir}{f'; resuming from {checkpoint}' if checkpoint else ''}")
    code, failure = 1, "interrupted before its launcher ended"
    try:
        code = run_node_foreground(run_dir, launch, checkpoint)
        failure = explain_node_exit(run_dir, launch.node_rank, procs, code)
    finally:
        mark_node_ended(run_dir, launch.node_rank, code, failure)
    if failure:
        say(f"error: node {launch.node_rank} ({socket.gethostname()}): {failure}")
    return code
