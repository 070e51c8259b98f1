"""How one node's share of a multi-node run ended (`nlirg train --nnodes ...`, `trainer_core.live.nodes`).

When a node's DeepSpeed launcher exits, the node explains the exit from its own ranks' `ranks/rank-N.json` (a rank
killed by a signal leaves no error of its own; only its node can tell, by its pid) and records it in its
`nodes/node-R.json`: `ended`, `exit_code` and `failure`. Node 0's rank 0 reads these to say which node died
(`train.ranks.failed_peer`), and a resumed launch never joins an attempt that ended. Torch-free.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from trainer_core.live.nodes import NODES_DIR, node_file
from trainer_core.live.processes import pid_alive
from trainer_core.live.rundir import TRAINER_FILE, read_json, write_json_atomic

RANKS_DIR = "ranks"
"""Where every rank leaves `rank-N.json` (pid, host, node, status, error): `trainer_core.train.ranks` writes it."""
KILLED = "killed by a signal (SIGKILL, or the out-of-memory killer)"


def rank_record(run_dir: Path, rank: int) -> dict[str, Any]:
    return read_json(run_dir / RANKS_DIR / f"rank-{rank}.json") or {}


def explain_node_exit(run_dir: Path, node_rank: int, procs_per_node: int, code: int) -> str | None:
    """Why this node's launcher exited with `code` (None for 0). Node 0 gives the run's own error (rank 0 has
    already named the node that died); another node names its rank that was killed, or else its first rank's error."""
    if code == 0:
        return None
    if node_rank == 0:
        error = (read_json(run_dir / TRAINER_FILE) or {}).get("error")
        if error:
            return f"the run failed: {error}"
    records = [rank_record(run_dir, node_rank * procs_per_node + i) for i in range(procs_per_node)]
    for info in records:
        if info.get("pid") and not pid_alive(info["pid"]) and info.get("status") not in ("completed", "stopped",
                                                                                         "failed"):
            return f"rank {info['rank']} (pid {info['pid']}) died without reporting an error: {KILLED}"
    for info in records:
        if info.get("error"):
            return f"rank {info['rank']} failed: {info['error']}"
    return f"its DeepSpeed launcher exited with code {code} (see {run_dir / RANKS_DIR} for its ranks' logs)"


def mark_node_ended(run_dir: Path, node_rank: int, code: int, failure: str | None) -> None:
    """Record in this node's file that its launch ended (and why it failed), for node 0 and the next attempt."""
    path = node_file(run_dir, node_rank)
    info = read_json(path)
    if info is not None:
        write_json_atomic(path, {**info, "ended": time.time(), "exit_code": code, "failure": failure})


def failed_node(run_dir: Path) -> dict[str, Any] | None:
    """The first other node of node 0's current attempt that recorded a failure: its node file."""
    lead = read_json(node_file(run_dir, 0)) or {}
    for path in sorted((run_dir / NODES_DIR).glob("node-*.json")):
        info = read_json(path) or {}
        if info.get("node_rank") != 0 and info.get("attempt") == lead.get("attempt") and info.get("failure"):
            return info
    return None
