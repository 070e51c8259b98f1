"""Multi-node DeepSpeed, one launch per node (`nlirg train --nnodes 2 --node-rank R ...`): two "nodes" on this
machine, one CPU rank each (gloo, 127.0.0.1), started from the per-node line of `nlirg slurm`'s sbatch script with
SLURM's variables, through the real `nlirg` CLI and DeepSpeed's per-node launcher."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nlirg_tui.app import NlirgApp
from nlirg_tui.panes import PANE_KEY
from nlirg_tui.slurm_script import srun_line
from tests.helpers import make_config, nlirg_cli, train_in_process
from tests.live_helpers import LONG, WAIT_S, wait_for, wait_for_step
from tests.test_deepspeed import COMMON, ONE_RANK, assert_same_steps, data, ds_env, needs_deepspeed, rank_info, steps
from tests.tui.conftest import shown, until
from trainer_core.config import save_config
from trainer_core.live.client import LiveClient
from trainer_core.live.events import read_events
from trainer_core.live.launch import _free_port, deepspeed_command, prepare_run
from trainer_core.live.node_end import KILLED
from trainer_core.live.nodes import NodeLaunch, write_hostfile
from trainer_core.live.rundir import read_json

__all__ = ["data"]  # the fixture, shared with test_deepspeed
NODE = ["distributed.backend=deepspeed", "distributed.num_procs=1", "training.batch_size=2"]


def start_slurm_node(rank: int, line: str, env: dict[str, str], cwd: Path, tag: str) -> subprocess.Popen:
    """One "node": the sbatch script's per-node line with SLURM's variables as srun sets them on node `rank` (each
    in its own session, as on its own machine), its output in cwd/TAG-R.out."""
    return subprocess.Popen(["bash", "-c", line], cwd=cwd, env={**env, "SLURM_NODEID": str(rank)},
                            stdout=(cwd / f"{tag}-{rank}.out").open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def end_nodes(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    """Every node's exit code within `timeout` s (the bound a test asserts); whatever is left is killed."""
    try:
        return [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


def last_line(path: Path) -> str:
    return path.read_text(errors="replace").strip().splitlines()[-1]


def leftovers(run_dir: Path) -> list[str]:
    """Processes of this run still on this machine (either node's nlirg, launcher or rank)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(run_dir) in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(f"{proc.pid}: {cmd[:200]}")
    return found


async def memory_pane(run_dir: Path) -> str:
    """What `nlirg attach RUN` shows of a finished run in the Memory pane (the ranks view)."""
    app = NlirgApp(run_dir=run_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.screen.link_mode == "replay", "the replay to finish")
        await pilot.press(PANE_KEY["memory"])
        table = app.screen.query_one("#memory-table")
        return await until(pilot, lambda: "host" in shown(table) and shown(table), "the ranks table")


@pytest.mark.deepspeed
@pytest.mark.slow
@needs_deepspeed
def test_slurm_nodes_train_as_one_run_a_killed_node_ends_it_and_it_resumes_exactly(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A constant LR: the resumed launch ends at another max_steps without changing any step's LR.
    sets = [*COMMON, f"data.train={data}", "training.scheduler=constant", "data.eval_fraction=0"]
    config = tmp_path / "nodes.yaml"
    save_config(make_config([*sets, *NODE, f"training.max_steps={LONG}", "output.name=nodes"]), config)
    run_dir, port, host = tmp_path / "shared" / "nodes-run", _free_port(), socket.gethostname()
    made = nlirg_cli("slurm", str(config), "--nodes", "2", "--gpus-per-node", "1", "--partition", "gpu",
                     "--master-port", str(port), "--run-dir", str(run_dir), "-o", "job.sbatch", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "sbatch job.sbatch" in made.stdout
    script = (tmp_path / "job.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script and "#SBATCH --partition=gpu" in script
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in script
    env = ds_env(tmp_path)
    slurm_env = {**env, "SLURM_NNODES": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                 "RUN_DIR": str(run_dir)}
    line = srun_line(script)
    late = start_slurm_node(1, line, slurm_env, tmp_path, "slurm")  # node 1 first: it waits for node 0's files
    nodes = [start_slurm_node(0, line, slurm_env, tmp_path, "slurm"), late]
    try:
        wait_for_step(run_dir, 1)
        saved = LiveClient.for_run(run_dir).command("save")  # the newest whole checkpoint; none after it
        assert saved["ok"], saved
        at = saved["applied_at_step"]
        wait_for_step(run_dir, at + 1)
        victim = rank_info(run_dir, 1)["pid"]
        os.kill(victim, signal.SIGKILL)  # node 1's trainer
    finally:
        codes = end_nodes(nodes, timeout=WAIT_S)  # node 0 stops on its own, within the bound
    out0, out1 = ((tmp_path / f"slurm-{r}.out").read_text(errors="replace") for r in (0, 1))
    assert "preparing the data once" in out0 and "node 1: waiting for node 0" in out1
    assert codes[0] != 0 and codes[1] != 0, codes
    # Which node died, in trainer.json, the end event and each node's last line; no process left on either node.
    died = f"node 1 ({host}): rank 1 (pid {victim}) died at step"
    trainer = read_json(run_dir / "trainer.json")
    assert trainer["status"] == "failed" and died in trainer["error"], trainer
    assert died in read_events(run_dir / "events.jsonl")[-1]["reason"]
    assert last_line(tmp_path / "slurm-0.out").startswith(f"error: node 0 ({host}): the run failed: {died}")
    assert last_line(tmp_path / "slurm-1.out") == (
        f"error: node 1 ({host}): rank 1 (pid {victim}) died without reporting an error: {KILLED}")
    wait_for(lambda: not leftovers(run_dir), "no process of the run left on either node", timeout=30)
    killed = steps(run_dir)

    # Both nodes again from `nlirg slurm --resume`'s script, node 1 first: it must wait for node 0's new attempt,
    # not join the ended one whose file it finds. Every rank continues from the newest whole checkpoint (the save).
    port = _free_port()
    made = nlirg_cli("slurm", "--resume", str(run_dir), "--nodes", "2", "--gpus-per-node", "1", "--master-port",
                     str(port), "--set", f"training.max_steps={at + 2}", "-o", "again.sbatch", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    line = srun_line((tmp_path / "again.sbatch").read_text())
    again = [start_slurm_node(r, line, {**slurm_env, "MASTER_PORT": str(port)}, tmp_path, "again") for r in (1, 0)]
    codes = end_nodes(again, timeout=300)
    assert codes == [0, 0], [(tmp_path / f"again-{r}.out").read_text()[-2000:] for r in (0, 1)]
    assert f"resuming from {run_dir / 'checkpoints' / f'step-{at}'}" in (tmp_path / "again-1.out").read_text()
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["steps"] == at + 2
    resumed = steps(run_dir)[len(killed):]
    assert [e["step"] for e in resumed] == [at + 1, at + 2]
    overlap = [e for e in killed if e["step"] > at][:2]  # the killed launch logged at least step at + 1
    assert_same_steps(resumed[:len(overlap)], overlap)  # exact: the resume repeats what the nodes trained
    assert not leftovers(run_dir)

    # The run's steps: the same as one device on the same global batch (test_deepspeed shows one node's two ranks
    # give these too), each rank's node and host in every step, one event stream from node 0.
    history = [e for e in killed if e["step"] <= at] + resumed
    ref_dir = tmp_path / "one"
    train_in_process(ref_dir, [*sets, *ONE_RANK, "training.max_steps=3"])
    assert_same_steps(history[:3], steps(ref_dir))
    for event in history:
        assert [(m["node_rank"], m["host"]) for m in event["rank_memory"]] == [(0, host), (1, host)]
    assert sorted(p.name for p in (run_dir / "ranks").iterdir()) == ["rank-0.json", "rank-1.json", "rank-1.log"]
    seqs = [e["seq"] for e in read_events(run_dir / "events.jsonl")]
    assert seqs == list(range(len(seqs)))
    assert {p.name for p in (run_dir / "nodes").iterdir()} == {"hostfile", "node-0.json", "node-1.json"}
    assert read_json(run_dir / "nodes" / "node-1.json")["attempt"] == 2

    # `nlirg attach RUN` (a finished run replays its events): the ranks view names both nodes and their host.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    rows = [line.split() for line in asyncio.run(memory_pane(run_dir)).splitlines() if line.strip()]
    assert rows[0][:3] == ["rank", "node", "host"]
    assert [row[:3] for row in rows[1:3]] == [["0", "0", host], ["1", "1", host]]


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


def test_a_resume_on_another_node_count_is_refused_in_one_line(data: Path, tmp_path: Path) -> None:
    run_dir = prepare_run(make_config([*COMMON, *NODE, f"data.train={data}"]), "nodes", at=tmp_path / "run")
    write_hostfile(run_dir, NodeLaunch(2, 0, "127.0.0.1", 29500), 1)  # as node 0 of a two-node launch wrote it
    alone = nlirg_cli("train", "--resume", str(run_dir), cwd=tmp_path)
    assert alone.returncode == 2
    assert alone.stderr.strip().splitlines()[-1] == (
        f"error: --resume {run_dir}: the run trained on 2 nodes, one launch per node; resume it on every node: "
        f"nlirg train --resume {run_dir} --nnodes 2 --node-rank R --master-addr NODE0 --master-port P")
    three = nlirg_cli("train", "--resume", str(run_dir), "--nnodes", "3", "--node-rank", "2", cwd=tmp_path)
    assert three.returncode == 2 and "the run trained on 2 nodes" in three.stderr.strip().splitlines()[-1]
    assert not (run_dir / "nodes" / "node-2.json").exists()
    slurm = nlirg_cli("slurm", "--resume", str(run_dir), "--nodes", "3", "--gpus-per-node", "1", cwd=tmp_path)
    assert slurm.returncode == 2
    assert slurm.stderr.strip().splitlines()[-1] == (
        f"error: --resume {run_dir}: the run trained on 2 nodes; give --nodes 2")


def test_rank_0_names_a_node_that_failed_on_another_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The two-node run above has both nodes on this host, where rank 0 finds the dead rank by its pid; on another host
    # only the node's own report says it (what node 1's nlirg writes when its launcher ends).
    from types import SimpleNamespace

    from trainer_core.train.ranks import failed_peer

    monkeypatch.setenv("CROSS_SIZE", "2")
    died = f"rank 1 (pid 4242) died without reporting an error: {KILLED}"
    for path, info in (("ranks/rank-0.json", {"rank": 0, "pid": os.getpid(), "host": socket.gethostname()}),
                       ("ranks/rank-1.json", {"rank": 1, "pid": os.getpid(), "host": "gpu-17", "node_rank": 1}),
                       ("nodes/node-0.json", {"node_rank": 0, "attempt": 2}),
                       ("nodes/node-1.json", {"node_rank": 1, "host": "gpu-17", "attempt": 2, "ended": 1.0,
                                              "failure": died})):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(json.dumps(info))
    said = failed_peer(tmp_path, SimpleNamespace(rank=0, world_size=2, step=57))
    assert said == f"node 1 (gpu-17) failed at step 57: {died}"
