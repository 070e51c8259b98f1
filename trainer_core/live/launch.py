"""Creating a run directory from a config and starting the trainer process (foreground or detached).

Torch-free: the CLI and the TUI call this without importing torch.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from trainer_core.config import RunConfig, build_config, save_config
from trainer_core.live.jit_cache import with_jit_cache
from trainer_core.live.nodes import NodeLaunch
from trainer_core.live.processes import descends_from, process_started
from trainer_core.live.run_lock import check_not_busy
from trainer_core.live.rundir import (
    CONFIG_FILE,
    FLAGGED_FILE,
    LOG_FILE,
    PRIVATE_MODE,
    SHARED_MODE,
    file_mode,
    new_run_dir,
    read_json,
    update_trainer_json,
)

EXIT_USER_ERROR = 2
"""The trainer's exit code for a user error (config, data, model): one line on stderr says which and what to do."""


def prepare_run(cfg: RunConfig, default_name: str, at: Path | None = None) -> Path:
    """Make `root/<name>-<stamp>/` (or the folder `at`, as an experiment names its runs) and write the resolved
    config there."""
    name = cfg.output.name or default_name
    absolute_paths(cfg)
    if at is not None:
        at.mkdir(parents=True)
        at.chmod(SHARED_MODE if cfg.output.shared else PRIVATE_MODE)  # as new_run_dir makes a run's folder
    run_dir = at.resolve() if at is not None else new_run_dir(cfg.output.root, name, cfg.output.shared)
    save_config(cfg, run_dir / CONFIG_FILE)
    (run_dir / FLAGGED_FILE).touch()  # the Inspector's file exists from the start (README: a run directory)
    update_trainer_json(run_dir, name=name, status="created", run_dir=str(run_dir))
    for path in run_dir.iterdir():  # later rewrites keep these modes (atomic.write_atomic); the trainer's umask
        path.chmod(file_mode(run_dir))  # follows the folder's (rundir.follow_run_dir_mode)
    return run_dir


def absolute_paths(cfg: RunConfig) -> RunConfig:
    """Absolute data and model paths (in place): a resumed or relaunched run may start from another folder."""
    cfg.data.train = [_absolute_source(p) for p in cfg.data.train]
    cfg.data.eval = [_absolute_source(p) for p in cfg.data.eval]
    cfg.data.exclude = _absolute(cfg.data.exclude) if cfg.data.exclude else None
    cfg.eval.domain = [_absolute(p) for p in cfg.eval.domain]
    cfg.eval.general = [_absolute(p) for p in cfg.eval.general]
    cfg.model.path = _absolute(cfg.model.path)
    return cfg


def trainer_command(run_dir: Path, resume: Path | None = None, progress: bool = False,
                    keep_lr_scale: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "trainer_core", "--run-dir", str(run_dir)]
    if resume is not None:
        cmd += ["--resume", str(resume)]
    if keep_lr_scale:
        cmd.append("--keep-lr-scale")
    if progress:
        cmd.append("--progress")
    return cmd


def launch_command(run_dir: Path, resume: Path | None = None, progress: bool = False,
                   keep_lr_scale: bool = False) -> list[str]:
    """The command that trains this run: the trainer itself, or the `deepspeed` launcher running it on every rank."""
    cfg = build_config(run_dir / CONFIG_FILE)
    command = trainer_command(run_dir, resume, progress, keep_lr_scale)
    if cfg.distributed.backend == "deepspeed":
        return deepspeed_command(cfg, command[3:])
    return command


def deepspeed_command(cfg: RunConfig, trainer_args: list[str], node: NodeLaunch | None = None,
                      run_dir: Path | None = None) -> list[str]:
    """`deepspeed [--hostfile F] [--include H:0,1 | --num_gpus N] --master_port P --no_local_rank --module
    trainer_core ARGS`: the real launcher, which starts one `python -m trainer_core` per rank with RANK,
    LOCAL_RANK, WORLD_SIZE and MASTER_* set, and ends the other ranks when one fails. With `node` (and the shared
    `run_dir`): its per-node mode, this node's `distributed.num_procs` ranks of a multi-node run (`nodes`)."""
    d = cfg.distributed
    script = Path(sys.executable).with_name("deepspeed")  # the launcher of this environment's DeepSpeed
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "deepspeed.launcher.runner"]
    if node is not None and run_dir is not None:
        cmd += node.launcher_flags(run_dir, d.num_procs)  # node count, ranks per node, rendezvous
    else:
        cmd += _one_launch_flags(d)
    cmd += ["--log_level", "warning"]  # the launcher's per-rank INFO lines would drown the progress display
    return [*cmd, "--no_local_rank", "--module", "trainer_core", *trainer_args]


def _one_launch_flags(d) -> list[str]:
    cmd = ["--hostfile", str(Path(d.hostfile).expanduser().resolve())] if d.hostfile else []
    if d.include:
        cmd += ["--include", d.include]
    elif not d.hostfile or d.num_procs > 1:
        # On a CPU-only machine the launcher counts NUMA nodes as devices; --num_gpus sets the rank count anyway.
        cmd += ["--num_gpus", str(d.num_procs)]
    if not d.hostfile:
        cmd += ["--master_port", str(_free_port())]  # two runs on one machine must not meet on port 29500
    return cmd


def run_foreground(run_dir: Path, resume: Path | None = None, keep_lr_scale: bool = False) -> int:
    """Run the trainer attached to this terminal; Ctrl+C reaches it and it stops cleanly."""
    command = launch_command(run_dir, resume, progress=True, keep_lr_scale=keep_lr_scale)
    if build_config(run_dir / CONFIG_FILE).distributed.backend == "deepspeed":
        return _run_launcher_foreground(run_dir, command)
    proc = subprocess.Popen(command, env=with_jit_cache(os.environ))
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # the trainer got the same SIGINT and is saving; wait for it


def start_detached(run_dir: Path, resume: Path | None = None, keep_lr_scale: bool = False,
                   env: dict[str, str] | None = None) -> int:
    """Start the trainer in its own session (immune to SIGHUP and the terminal closing); return its pid.
    RunBusy (a one-line message) when a trainer trains the run already: trainer.json is left alone.

    `env` adds variables (an experiment pins a run to one GPU with CUDA_VISIBLE_DEVICES)."""
    check_not_busy(run_dir)
    fd = os.open(run_dir / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, file_mode(run_dir))
    log = os.fdopen(fd, "ab")  # handed to the child
    proc = subprocess.Popen(
        launch_command(run_dir, resume, keep_lr_scale=keep_lr_scale), stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
        env=with_jit_cache({**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}),  # ops built per environment
    )
    log.close()
    # rank 0 replaces pid with its own; `starting` tells a client that reads an earlier `end` (a resume) to wait
    update_trainer_json(run_dir, pid=proc.pid, pid_started=process_started(proc.pid), launcher_pid=proc.pid,
                        status="starting", ended=None)
    return proc.pid


def run_node_foreground(run_dir: Path, node: NodeLaunch, resume: Path | None = None) -> int:
    """This node's ranks of a multi-node run, attached to this terminal (`nodes`: the nodes met already), from the
    checkpoint `resume` on every node."""
    cfg = build_config(run_dir / CONFIG_FILE)
    args = trainer_command(run_dir, resume, progress=True)[3:]
    return _run_launcher_foreground(run_dir, deepspeed_command(cfg, args, node, run_dir))


def _run_launcher_foreground(run_dir: Path, cmd: list[str]) -> int:
    """The DeepSpeed launcher in its own process group: Ctrl+C asks rank 0 to stop (it shares the stop, every
    rank saves at the same step and exits 0); a second Ctrl+C ends the whole group."""
    proc = subprocess.Popen(cmd, start_new_session=True, env=with_jit_cache(os.environ))  # ops built per environment
    interrupts = 0
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            interrupts += 1
            rank0 = (read_json(run_dir / "ranks" / "rank-0.json") or {}).get("pid")
            try:
                if interrupts == 1 and isinstance(rank0, int) and descends_from(rank0, proc.pid):
                    os.kill(int(rank0), signal.SIGTERM)
                else:
                    os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _absolute_source(entry: str | dict) -> str | dict:
    """A data source with an absolute path (a plain path, or the `path` of a source mapping)."""
    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
        return {**entry, "path": _absolute(entry["path"])}
    return _absolute(entry) if isinstance(entry, str) else entry


def _absolute(spec: str) -> str:
    p = Path(spec).expanduser()
    return str(p.resolve()) if not spec.startswith("builtin:") and p.exists() else spec
