"""One launch per node (clusters without SSH between nodes): every node runs `nlirg train CONFIG --nnodes N
--node-rank R --master-addr HOST --master-port P --run-dir DIR` on the same shared run directory.

Before any rank starts, the nodes meet through files in `DIR/nodes/` (a shared file system, no collective yet):
node 0 makes the run directory, prepares the data once into the shared cache, and writes `node-0.json` with the
config hash and code version; every other node waits for it (bounded), refuses itself when its own config or code
differ, and writes `node-R.json`; node 0 waits (bounded) for every other node's file. Only then does each node run
DeepSpeed's launcher in its per-node mode (`--no_ssh --node_rank R`). Torch-free.

Every launch of the run (the first, and each `--resume`) is one `attempt`: node 0 counts them in `node-0.json`, a
node joins only an attempt newer than the one its own file names and that has not ended, and node 0 takes only
files of its own attempt, so files a killed launch left in `nodes/` are never mistaken for a live one.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_core.atomic import write_atomic
from trainer_core.config import RunConfig, build_config
from trainer_core.live.rundir import CONFIG_FILE, read_json, write_json_atomic

NODES_DIR = "nodes"
HOSTFILE = "hostfile"
DEFAULT_WAIT_S = 600.0
"""How long a node waits for the others before it gives up (`--node-wait`)."""


class NodeError(Exception):
    """A node that cannot take part: one line naming the node and what to do (exit 2)."""


@dataclass(frozen=True)
class NodeLaunch:
    """This node's place in a multi-node run (the names torchrun uses)."""

    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int
    wait_s: float = DEFAULT_WAIT_S

    def problems(self) -> list[str]:
        out = []
        if self.nnodes < 1:
            out.append(f"--nnodes {self.nnodes}: give the number of nodes (>= 1)")
        if not 0 <= self.node_rank < max(self.nnodes, 1):
            out.append(f"--node-rank {self.node_rank}: give 0 .. {self.nnodes - 1} (this node's place among "
                       f"--nnodes {self.nnodes})")
        if not 0 < self.master_port < 65536:
            out.append(f"--master-port {self.master_port}: give a TCP port (1-65535) free on node 0")
        if not self.master_addr:
            out.append("--master-addr: give node 0's address (host name or IP) that every node reaches")
        return out

    def launcher_flags(self, run_dir: Path, procs_per_node: int) -> list[str]:
        """DeepSpeed's per-node mode: no SSH, this node's rank, the rendezvous, N nodes of `procs_per_node` ranks
        each (the launcher needs a hostfile to count nodes; its names are labels, nothing connects to them)."""
        return ["--hostfile", str(run_dir / NODES_DIR / HOSTFILE), "--no_ssh", "--node_rank", str(self.node_rank),
                "--master_addr", self.master_addr, "--master_port", str(self.master_port),
                "--num_nodes", str(self.nnodes), "--num_gpus", str(procs_per_node)]


def node_file(run_dir: Path, node_rank: int) -> Path:
    return run_dir / NODES_DIR / f"node-{node_rank}.json"


def config_hash(cfg: RunConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def code_version() -> str:
    """A digest of the workbench's own Python source (trainer_core and nlirg_tui): two nodes with other code
    would compute other steps and meet in mismatched collectives."""
    digest = hashlib.sha256()
    for package in ("trainer_core", "nlirg_tui"):
        root = Path(sys.modules[package].__file__).parent if package in sys.modules else \
            Path(__file__).resolve().parents[2] / package
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def write_hostfile(run_dir: Path, launch: NodeLaunch, procs_per_node: int) -> None:
    lines = "".join(f"node-{r} slots={procs_per_node}\n" for r in range(launch.nnodes))
    (run_dir / NODES_DIR).mkdir(exist_ok=True)
    write_atomic(run_dir / NODES_DIR / HOSTFILE, lines)


def node_count(run_dir: Path) -> int | None:
    """How many nodes a run was launched on one launch per node (its generated hostfile); None: one machine."""
    path = run_dir / NODES_DIR / HOSTFILE
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else None


def resume_problem(run_dir: Path, nnodes: int | None) -> str | None:
    """Why a resume with `--nnodes nnodes` (None: on one machine) cannot continue this run: another node count
    would give other ranks than the checkpoint's."""
    trained = node_count(run_dir)
    if trained == nnodes:
        return None
    if trained is None:
        return (f"--resume {run_dir}: the run trained on one machine; resume it there with nlirg train --resume "
                f"{run_dir} (without --nnodes)")
    return (f"--resume {run_dir}: the run trained on {trained} nodes, one launch per node; resume it on every node: "
            f"nlirg train --resume {run_dir} --nnodes {trained} --node-rank R --master-addr NODE0 --master-port P")


def announce_node(run_dir: Path, launch: NodeLaunch, cfg: RunConfig, attempt: int, **fields: Any) -> None:
    (run_dir / NODES_DIR).mkdir(exist_ok=True)
    write_json_atomic(node_file(run_dir, launch.node_rank), {
        "node_rank": launch.node_rank, "host": socket.gethostname(), "config_hash": config_hash(cfg),
        "code_version": code_version(), "time": time.time(), "attempt": attempt, "ended": None, **fields})


def last_attempt(run_dir: Path, node_rank: int) -> int:
    """The attempt this node's file names (0: it never took part)."""
    info = read_json(node_file(run_dir, node_rank)) or {}
    return info["attempt"] if isinstance(info.get("attempt"), int) else 0


def _open_attempt(info: dict[str, Any] | None, after: int) -> dict[str, Any] | None:
    """Node 0's file when it announces an attempt newer than `after` that has not ended."""
    if info and isinstance(info.get("attempt"), int) and info["attempt"] > after and not info.get("ended"):
        return info
    return None


def wait_for(what: Callable[[], Any], wait_s: float, poll_s: float = 0.2) -> Any:
    """`what()` once it is truthy, or None after `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        got = what()
        if got or time.monotonic() >= deadline:
            return got or None
        time.sleep(poll_s)


def join_as_worker(run_dir: Path, launch: NodeLaunch, config: Callable[[], RunConfig], resume: bool,
                   say: Callable[[str], None]) -> dict[str, Any]:
    """A node above 0: wait for node 0's file of a new attempt, refuse another config, code or resume, then say
    this node is ready. `config()` builds this node's config once node 0 has written the run's (a resume changes
    it). Returns node 0's file (its `resume`: the checkpoint every node continues from)."""
    first, before = node_file(run_dir, 0), last_attempt(run_dir, launch.node_rank)
    say(f"node {launch.node_rank}: waiting for node 0 to write {first} (up to {launch.wait_s:.0f} s)")
    lead = wait_for(lambda: _open_attempt(read_json(first), before), launch.wait_s)
    if lead is None:
        raise NodeError(f"node {launch.node_rank}: node 0 did not start within {launch.wait_s:.0f} s (no new "
                        f"{first}); start node 0 with the same --run-dir, or raise --node-wait")
    cfg = config()
    problem = _mismatch(run_dir, lead, cfg) or _resume_mismatch(lead, resume)
    announce_node(run_dir, launch, cfg, lead["attempt"], error=problem)
    if problem:
        raise NodeError(f"node {launch.node_rank} refused: {problem}")
    return lead


def _resume_mismatch(lead: dict[str, Any], resume: bool) -> str | None:
    if bool(lead.get("resume")) == resume:
        return None
    if resume:
        return "node 0 starts the run afresh but this node was given --resume; give every node the same command"
    return (f"node 0 resumes the run from {lead['resume']} but this node was not given --resume; give every node "
            "the same command")


def wait_for_workers(run_dir: Path, launch: NodeLaunch, attempt: int, say: Callable[[str], None]) -> None:
    """Node 0: every other node's file of this attempt, bounded; a node that refused itself fails the run with its
    reason."""
    missing = list(range(1, launch.nnodes))
    if missing:
        say(f"node 0: waiting for node(s) {', '.join(map(str, missing))} to join (up to {launch.wait_s:.0f} s)")
    deadline = time.monotonic() + launch.wait_s
    while missing:
        for rank in list(missing):
            info = read_json(node_file(run_dir, rank))
            if info is None or info.get("attempt") != attempt:
                continue
            if info.get("error"):
                raise NodeError(f"node {rank} ({info.get('host')}) refused to join: {info['error']}")
            missing.remove(rank)
        if not missing:
            return
        if time.monotonic() >= deadline:
            names = ", ".join(f"node {r}" for r in missing)
            raise NodeError(f"node 0: {names} did not join within {launch.wait_s:.0f} s (no "
                            f"{node_file(run_dir, missing[0])}); start it with --node-rank {missing[0]} and the "
                            "same --run-dir, or raise --node-wait")
        time.sleep(0.2)


def _mismatch(run_dir: Path, lead: dict[str, Any], cfg: RunConfig) -> str | None:
    if lead.get("code_version") != code_version():
        return (f"its code ({code_version()}) differs from node 0's ({lead.get('code_version')}, on "
                f"{lead.get('host')}); install the same workbench version on every node")
    if lead.get("config_hash") == config_hash(cfg):
        return None
    theirs = _flat(build_config(run_dir / CONFIG_FILE).to_dict())
    mine = _flat(cfg.to_dict())
    keys = sorted(k for k in theirs.keys() | mine.keys() if theirs.get(k) != mine.get(k))
    shown = ", ".join(f"{k} ({mine.get(k)!r} here, {theirs.get(k)!r} on node 0)" for k in keys[:4])
    return (f"its config differs from node 0's ({run_dir / CONFIG_FILE}): {shown or 'hash differs'}"
            f"{' ...' if len(keys) > 4 else ''}; give every node the same config and --set")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
