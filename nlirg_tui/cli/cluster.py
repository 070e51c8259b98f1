"""`nlirg slurm`: an sbatch script for a multi-node DeepSpeed run (`nlirg_tui.slurm_script`); the per-node launch
itself is `nlirg train --nnodes ...` (`nlirg_tui.cli.training`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlirg_tui.cli.common import DEFAULT_ROOT, SetOpt, die
from trainer_core.config import ConfigError, build_config

commands = typer.Typer()
"""This group's commands; nlirg_tui.cli adds them to the `nlirg` app."""


@commands.command()
def slurm(
    nodes: Annotated[int, typer.Option("--nodes", metavar="N", help="Number of nodes.")],
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", metavar="G",
                                               help="GPUs (DeepSpeed ranks) on each node.")],
    config: Annotated[Path | None, typer.Argument(help="Run config YAML (on the shared file system).")] = None,
    partition: Annotated[str | None, typer.Option("--partition", metavar="NAME", help="SLURM partition.")] = None,
    time_limit: Annotated[str | None, typer.Option("--time", metavar="HH:MM:SS", help="SLURM time limit.")] = None,
    port: Annotated[int, typer.Option("--master-port", metavar="P", help="Rendezvous port on node 0.")] = 29500,
    run_dir: Annotated[str | None, typer.Option("--run-dir", metavar="DIR", help="Shared run directory (default: "
                                                "output.root/NAME-$SLURM_JOB_ID).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE",
                                                help="Script to write (default: NAME.sbatch here).")] = None,
    resume: Annotated[str | None, typer.Option("--resume", metavar="RUN", help="Continue this run (its directory, "
                                               "name or prefix) on the nodes instead of starting CONFIG.")] = None,
    set_: SetOpt = None,
) -> None:
    """Write an sbatch script that runs this config on N nodes (one `nlirg train --nnodes ...` per node), or
    continues a run there (--resume RUN).

    docs/deepspeed.md, "Several machines"."""
    from nlirg_tui.slurm_script import SlurmJob, sbatch_script

    if nodes < 1 or gpus_per_node < 1:
        die("--nodes and --gpus-per-node: give numbers >= 1")
    if (config is None) == (resume is None):
        die("give a CONFIG to start a run, or --resume RUN to continue one (not both)")
    run = _resumed(resume, nodes, run_dir) if resume else None
    try:
        cfg = build_config(run / "config.yaml" if run else config, [
            *(set_ or []), "distributed.backend=deepspeed", f"distributed.num_procs={gpus_per_node}"])
    except ConfigError as exc:
        die(str(exc))
    name = cfg.output.name or (run.name if run else config.stem)
    where = str(run) if run else run_dir or f"{Path(cfg.output.root).expanduser().resolve()}/{name}-$SLURM_JOB_ID"
    job = SlurmJob(config or Path(), nodes, gpus_per_node, where, name, partition, time_limit, port, list(set_ or []),
                   resume=run is not None)
    out = output or Path(f"{name}.sbatch")
    out.write_text(sbatch_script(job))
    out.chmod(0o755)
    typer.echo(f"wrote {out}\nsubmit:  sbatch {out}    (prints the job id)\n"
               f"follow:  squeue -j JOBID; the run directory is {where} (JOBID for $SLURM_JOB_ID)\n"
               "attach:  on node 0, where the live socket is: srun --jobid JOBID --overlap -N1 -n1 -w NODE0 --pty "
               "nlirg attach RUN_DIR  (NODE0: the first name of squeue -j JOBID -o %N)")


def _resumed(resume: str, nodes: int, run_dir: str | None) -> Path:
    """The run `--resume` names, trained on `nodes` nodes (its run directory is the job's)."""
    from trainer_core.live.nodes import node_count
    from trainer_core.live.runs import RunNotFound, resolve_run

    if run_dir is not None:
        die("--resume RUN is the run directory already: drop --run-dir")
    try:
        run = resolve_run(resume, DEFAULT_ROOT)
    except RunNotFound as exc:
        die(f"--resume {exc}")
    trained = node_count(run)
    if trained is None:
        die(f"--resume {run}: the run trained on one machine; resume it there with nlirg train --resume {run}")
    if trained != nodes:
        die(f"--resume {run}: the run trained on {trained} nodes; give --nodes {trained}")
    return run
