"""`nlirg slurm CONFIG --nodes N --gpus-per-node G`: an sbatch script that `srun`s one per-node launch on every node
(`nlirg train --nnodes/--node-rank ...`, `nlirg_tui.node_train`) with SLURM's variables. Torch-free."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

PER_NODE_MARK = "# per-node launch (srun runs it once on every node):"
"""The comment above the line `srun` runs; the line itself is plain shell, so other schedulers can reuse it."""


@dataclass
class SlurmJob:
    config: Path
    nodes: int
    gpus_per_node: int
    run_dir: str
    """The shared run directory, inside double quotes in the script: it may use $SLURM_JOB_ID."""
    name: str
    partition: str | None = None
    time: str | None = None
    port: int = 29500
    overrides: list[str] = field(default_factory=list)
    resume: bool = False
    """Continue the run in `run_dir` (`nlirg train --resume`) instead of starting `config` afresh."""


def per_node_command(job: SlurmJob) -> str:
    """The launch every node runs (a new run of the config, or a resume of RUN_DIR); SLURM_NNODES, SLURM_NODEID,
    MASTER_ADDR, MASTER_PORT and RUN_DIR from the env."""
    nlirg = Path(sys.executable).with_name("nlirg")  # this environment's CLI: the same path on every node
    sets = [f"distributed.num_procs={job.gpus_per_node}", "distributed.backend=deepspeed", *job.overrides]
    words = " ".join(f"--set {shlex.quote(s)}" for s in sets)
    what = '--resume "$RUN_DIR"' if job.resume else f"{shlex.quote(str(job.config.resolve()))} --run-dir \"$RUN_DIR\""
    return (f"exec {shlex.quote(str(nlirg))} train {what} {words} --nnodes \"$SLURM_NNODES\" --node-rank "
            '"$SLURM_NODEID" --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT"')


def sbatch_script(job: SlurmJob) -> str:
    optional = [f"#SBATCH --partition={job.partition}"] if job.partition else []
    optional += [f"#SBATCH --time={job.time}"] if job.time else []
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job.name}",
        f"#SBATCH --nodes={job.nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={job.gpus_per_node}",
        *optional,
        "set -euo pipefail",
        f"export RUN_DIR=\"{job.run_dir}\"",
        'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
        f"export MASTER_PORT={job.port}",
        'echo "run directory: $RUN_DIR (node 0: $MASTER_ADDR)"',
        PER_NODE_MARK,
        f"srun --kill-on-bad-exit=1 bash -c {shlex.quote(per_node_command(job))}",
    ]
    return "\n".join(lines) + "\n"


def srun_line(script: str) -> str:
    """The per-node command inside a script's srun line (what a test or another scheduler runs on each node)."""
    lines = script.splitlines()
    srun = lines[lines.index(PER_NODE_MARK) + 1]
    return shlex.split(srun)[-1]
