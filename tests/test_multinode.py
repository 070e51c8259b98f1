"""Multi-node DeepSpeed, one launch per node (`nlirg train --nnodes 2 --node-rank R ...`): two "nodes" on this
machine, one CPU rank each (gloo, 127.0.0.1), started from the per-node line of `nlirg slurm`'s sbatch script with
SLURM's variables, through the real `nlirg` CLI and DeepSpeed's per-node launcher."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nlirg_tui.slurm_script import srun_line
from tests.helpers import make_config, nlirg_cli, train_in_process
from tests.test_deepspeed import COMMON, ONE_RANK, assert_same_steps, data, ds_env, needs_deepspeed, steps
from trainer_core.config import save_config
from trainer_core.live.events import read_events
from trainer_core.live.launch import _free_port, deepspeed_command
from trainer_core.live.nodes import NodeLaunch
from trainer_core.live.rundir import read_json

__all__ = ["data"]  # the fixture, shared with test_deepspeed
NODE = ["distributed.backend=deepspeed", "distributed.num_procs=1", "training.batch_size=2"]


def start_node(rank: int, line: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """One "node": the sbatch script's per-node line with SLURM's variables as srun sets them on node `rank`."""
    log = (cwd / f"node-{rank}.out").open("wb")
    return subprocess.Popen(["bash", "-c", line], cwd=cwd, env={**env, "SLURM_NODEID": str(rank)}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, cwd: Path, rank: int) -> str:
    try:
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = (cwd / f"node-{rank}.out").read_text(errors="replace")
    assert code == 0, f"node {rank} exited {code}:\n{out[-3000:]}"
    return out


@pytest.mark.deepspeed
@pytest.mark.slow
@needs_deepspeed
def test_two_per_node_launches_from_the_slurm_script_train_as_one_run(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "nodes.yaml"
    save_config(make_config([*COMMON, *NODE, f"data.train={data}", "training.max_steps=3", "output.name=nodes"]),
                config)
    run_dir = tmp_path / "shared" / "nodes-run"
    port = _free_port()
    made = nlirg_cli("slurm", str(config), "--nodes", "2", "--gpus-per-node", "1", "--partition", "gpu",
                     "--master-port", str(port), "--run-dir", str(run_dir), "-o", "job.sbatch", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "sbatch job.sbatch" in made.stdout
    script = (tmp_path / "job.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --partition=gpu" in script
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in script
    line = srun_line(script)
    env = {**ds_env(tmp_path), "SLURM_NNODES": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "RUN_DIR": str(run_dir)}
    late = start_node(1, line, env, tmp_path)  # node 1 first: it waits for node 0's files
    first = start_node(0, line, env, tmp_path)
    out1, out0 = finish(late, tmp_path, 1), finish(first, tmp_path, 0)
    assert "node 1: waiting for node 0" in out1
    assert "preparing the data once" in out0

    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "completed" and summary["world_size"] == 2
    # The same global batch on one device (test_deepspeed shows one node's two ranks give these steps too).
    ref_dir = tmp_path / "one"
    train_in_process(ref_dir, [*COMMON, *ONE_RANK, f"data.train={data}", "training.max_steps=3"])
    two = steps(run_dir)
    assert_same_steps(two, steps(ref_dir))
    host = socket.gethostname()
    for event in two:
        assert [(m["node_rank"], m["host"]) for m in event["rank_memory"]] == [(0, host), (1, host)]
    # Node 1's rank wrote only its own log and status; node 0 wrote the one event stream.
    assert sorted(p.name for p in (run_dir / "ranks").iterdir()) == ["rank-0.json", "rank-1.json", "rank-1.log"]
    seqs = [e["seq"] for e in read_events(run_dir / "events.jsonl")]
    assert seqs == list(range(len(seqs)))
    assert {p.name for p in (run_dir / "nodes").iterdir()} == {"hostfile", "node-0.json", "node-1.json"}


def node_args(rank: int, run_dir: Path, wait_s: float, sets: list[str]) -> list[str]:
    return ["train", "--nnodes", "2", "--node-rank", str(rank), "--master-port", str(_free_port()), "--run-dir",
            str(run_dir), "--node-wait", str(wait_s), *[a for s in sets for a in ("--set", s)]]


@pytest.mark.slow
@needs_deepspeed
def test_nodes_that_cannot_meet_fail_in_one_line_before_any_rank_starts(data: Path, tmp_path: Path) -> None:
    sets = [*COMMON, *NODE, f"data.train={data}", "training.max_steps=3"]
    alone = nlirg_cli(*node_args(0, tmp_path / "alone", 2, sets), cwd=tmp_path)
    assert alone.returncode == 2, alone.stderr
    error = alone.stderr.strip().splitlines()[-1]
    assert error.startswith("error: node 0: node 1 did not join within 2 s"), error
    assert "--node-rank 1" in error
    assert not (tmp_path / "alone" / "ranks").exists(), "no rank may start"

    run_dir = tmp_path / "mixed"
    exe = Path(sys.executable).with_name("nlirg")
    lead = subprocess.Popen([str(exe), *node_args(0, run_dir, 120, sets)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ds_env(tmp_path))
    try:
        other = nlirg_cli(*node_args(1, run_dir, 120, [*sets, "training.lr=0.01"]), cwd=tmp_path)
        _, lead_err = lead.communicate(timeout=180)
    finally:
        if lead.poll() is None:
            lead.kill()
    assert other.returncode == 2
    refused = other.stderr.strip().splitlines()[-1]
    assert refused.startswith("error: node 1 refused: its config differs from node 0's"), refused
    assert "training.lr (0.01 here, 0.003 on node 0)" in refused
    assert lead.returncode == 2
    assert lead_err.strip().splitlines()[-1].startswith("error: node 1 (") and "refused to join" in lead_err
    assert not (run_dir / "ranks").exists(), "no rank may start"


def test_per_node_launcher_command_line(data: Path, tmp_path: Path) -> None:
    cfg = make_config([*COMMON, *NODE, f"data.train={data}", "distributed.num_procs=4"])
    cmd = deepspeed_command(cfg, ["--run-dir", "R"], NodeLaunch(3, 2, "gpu-01", 29400), tmp_path)
    def flag(name: str) -> str:
        return cmd[cmd.index(name) + 1]

    assert "--no_ssh" in cmd and flag("--node_rank") == "2" and flag("--num_nodes") == "3"
    assert flag("--num_gpus") == "4" and flag("--master_addr") == "gpu-01" and flag("--master_port") == "29400"
    assert flag("--hostfile") == str(tmp_path / "nodes" / "hostfile") and "--include" not in cmd
    assert cmd[-5:] == ["--no_local_rank", "--module", "trainer_core", "--run-dir", "R"]
    assert NodeLaunch(2, 2, "", 0).problems() == [
        "--node-rank 2: give 0 .. 1 (this node's place among --nnodes 2)",
        "--master-port 0: give a TCP port (1-65535) free on node 0",
        "--master-addr: give node 0's address (host name or IP) that every node reaches"]
