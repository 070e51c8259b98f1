"""`nlirg slurm`: an sbatch script for a multi-node DeepSpeed run (`nlirg_tui.slurm_script`); the per-node launch
itself is `nlirg train --nnodes ...` (`nlirg_tui.cli.training`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlirg_tui.cli.common import SetOpt, die
from trainer_core.config import ConfigError, build_config

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


@commands.command()
def slurm(
    config: Annotated[Path, typer.Argument(help="Run config YAML (on the shared file system).")],
    nodes: Annotated[int, typer.Option("--nodes", metavar="N", help="Number of nodes.")],
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", metavar="G",
                                               help="GPUs (DeepSpeed ranks) on each node.")],
    partition: Annotated[str | None, typer.Option("--partition", metavar="NAME", help="SLURM partition.")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", metavar="HH:MM:SS", help="SLURM time limit.")] = None,
    port: Annotated[int, typer.Option("--master-port", metavar="P", help="Rendezvous port on node 0.")] = 29500,
    run_dir: Annotated[str | None, typer.Option("--run-dir", metavar="DIR", help="Shared run directory (default: "
                                                "output.root/NAME-$SLURM_JOB_ID).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="Script to write (default: NAME.sbatch here).")] = None,
    set_: SetOpt = None,
) -> None:
    """Write an sbatch script that runs this config on N nodes (one `nlirg train --nnodes ...` per node).

    docs/deepspeed.md, "Several machines"."""
    from nlirg_tui.slurm_script import SlurmJob, sbatch_script

    if nodes < 1 or gpus_per_node < 1:
        die("--nodes and --gpus-per-node: give numbers >= 1")
    try:
        cfg = build_config(config, [*(set_ or []), "distributed.backend=deepspeed",
                                    f"distributed.num_procs={gpus_per_node}"])
    except ConfigError as exc:
        die(str(exc))
    name = cfg.output.name or config.stem
    where = run_dir or f"{Path(cfg.output.root).expanduser().resolve()}/{name}-$SLURM_JOB_ID"
    job = SlurmJob(config, nodes, gpus_per_node, where, name, partition, time_limit, port, list(set_ or []))
    out = output or Path(f"{name}.sbatch")
    out.write_text(sbatch_script(job))
    out.chmod(0o755)
    typer.echo(f"wrote {out}\nsubmit:  sbatch {out}    (prints the job id)\n"
               f"follow:  squeue -j JOBID; the run directory is {where} (JOBID for $SLURM_JOB_ID)\n"
               "attach:  on node 0, where the live socket is: srun --jobid JOBID --overlap -N1 -n1 -w NODE0 --pty "
               "nlirg attach RUN_DIR  (NODE0: the first name of squeue -j JOBID -o %N)")
