"""`nlirg train CONFIG --nnodes N --node-rank R --master-addr HOST --master-port P --run-dir DIR`: this node's
share of a multi-node DeepSpeed run (docs/deepspeed.md, "Several machines"; the meeting: trainer_core.live.nodes).
Torch-free."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from trainer_core.config import RunConfig
from trainer_core.live.launch import EXIT_USER_ERROR, absolute_paths, prepare_run, run_node_foreground
from trainer_core.live.nodes import (
    NodeError,
    NodeLaunch,
    announce_node,
    join_as_worker,
    wait_for_workers,
    write_hostfile,
)


def train_node(cfg: RunConfig, name: str, run_dir: Path, launch: NodeLaunch,
               check_data: Callable[[RunConfig], None]) -> int:
    """Meet the other nodes (bounded), then run this node's ranks; the exit code of DeepSpeed's launcher."""
    def say(line: str) -> None:
        typer.echo(line, err=True)

    problems = launch.problems()
    if cfg.distributed.backend != "deepspeed":
        problems.append("--nnodes/--node-rank run DeepSpeed's per-node launcher: set distributed.backend=deepspeed")
    if problems:
        raise NodeError("; ".join(problems))
    run_dir = run_dir.expanduser().resolve()
    absolute_paths(cfg)
    if launch.node_rank == 0:
        if (run_dir / "config.yaml").exists():
            raise NodeError(f"node 0: {run_dir} holds a run already; name a new --run-dir on every node")
        check_data(cfg)
        prepare_run(cfg, name, at=run_dir)
        write_hostfile(run_dir, launch, cfg.distributed.num_procs)
        say(f"node 0: preparing the data once into the shared cache for {run_dir}")
        warm = subprocess.run([sys.executable, "-m", "trainer_core.train.data.warm", "--run-dir", str(run_dir)])
        if warm.returncode != 0:
            return warm.returncode if warm.returncode == EXIT_USER_ERROR else 1
        announce_node(run_dir, launch, cfg, data_ready=True)
        wait_for_workers(run_dir, launch, say)
    else:
        join_as_worker(run_dir, launch, cfg, say)
    say(f"node {launch.node_rank}: starting {cfg.distributed.num_procs} rank(s); master "
        f"{launch.master_addr}:{launch.master_port}; run directory {run_dir}")
    return run_node_foreground(run_dir, launch)
