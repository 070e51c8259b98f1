"""The bookkeeping of DeepSpeed ranks: which rank this process is, what ranks above 0 write, and how a rank
that sees a collective break finds out which other rank died and why (the life itself: `lifecycle`).

Every rank leaves `ranks/rank-N.json` (pid, host, and its fatal error if it had one); ranks above 0 log to
`ranks/rank-N.log` and write nothing else: trainer.json, events.jsonl, summary.json and the socket are
rank 0's. Torch-free at import, so `python -m trainer_core` can decide what to be before loading torch.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from trainer_core.live.node_end import KILLED, RANKS_DIR, failed_node
from trainer_core.live.processes import pid_alive
from trainer_core.live.protocol import check_event_fields
from trainer_core.live.rundir import read_json, write_json_atomic

PEER_WAIT_S = 3.0
"""How long a rank whose collective broke looks for the dead rank's report before giving a generic error."""
NODE_WAIT_S = 10.0
"""The same in a multi-node run: a rank on another node is reported by its node once that node's launcher ended."""


def launcher_rank() -> int:
    """This process's rank as a launcher set it; 0 outside a multi-process launch."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    return int(os.environ.get("RANK", "0"))


def node_place() -> dict[str, Any]:
    """This rank's node (DeepSpeed's launcher sets CROSS_RANK to its --node_rank) and host name, for the per-rank
    entries of a step event."""
    return {"node_rank": int(os.environ.get("CROSS_RANK", "0")), "host": socket.gethostname()}


def rank_file(run_dir: Path, rank: int) -> Path:
    return run_dir / RANKS_DIR / f"rank-{rank}.json"


def announce(run_dir: Path, rank: int, **fields: Any) -> None:
    """Record this rank's pid and host (and later its error) so the other ranks can explain its death."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    path = rank_file(run_dir, rank)
    path.parent.mkdir(exist_ok=True)
    data = read_json(path) or {}
    data.update({"rank": rank, "pid": os.getpid(), **node_place(), **fields})
    write_json_atomic(path, data)


class SilentEventLog:
    """Ranks above 0 build the same events as rank 0 but keep none: rank 0's events.jsonl is the run's log."""

    next_seq = 0
    last_seq = -1

    def emit(self, type_: str, **payload: Any) -> dict[str, Any]:
        check_event_fields(type_, payload)  # the same rule as rank 0's log: a malformed event is a bug on any rank
        return {"type": type_, **payload}

    def subscribe(self, listener) -> None:
        pass

    def unsubscribe(self, listener) -> None:
        pass

    def close(self) -> None:
        pass


def failed_peer(run_dir: Path, trainer) -> str | None:
    """Why another rank is gone, when this rank's collective broke because of it; None if no rank is known dead.
    In a multi-node run the message starts with the dead rank's node and host; a rank on another host is known
    dead only by its node's report (`live.node_end`), which takes its launcher a moment longer."""
    me = trainer.rank
    if trainer.world_size <= 1:
        return None
    nodes = int(os.environ.get("CROSS_SIZE", "1")) > 1
    started = time.monotonic()
    deadline = started + (NODE_WAIT_S if nodes else PEER_WAIT_S)
    while True:
        dead: list[dict[str, Any]] = []
        for path in sorted((run_dir / RANKS_DIR).glob("rank-*.json")):
            info = read_json(path) or {}
            if info.get("rank") == me:
                continue
            if info.get("error"):
                return f"{_node(info, nodes)}rank {info['rank']} failed at step {trainer.step}: {info['error']}"
            if info.get("host") == socket.gethostname() and not pid_alive(info.get("pid")):
                dead.append(info)
        if dead and time.monotonic() >= started + PEER_WAIT_S / 2:  # give a dying rank a moment to write
            info = dead[0]
            return (f"{_node(info, nodes)}rank {info['rank']} (pid {info['pid']}) died at step {trainer.step} "
                    f"without reporting an error: {KILLED}; the other ranks were stopped")
        node = failed_node(run_dir) if nodes and not dead else None  # a rank dead here is named by its own pid
        if node is not None:
            return f"node {node['node_rank']} ({node['host']}) failed at step {trainer.step}: {node['failure']}"
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def _node(info: dict[str, Any], nodes: bool) -> str:
    return f"node {info.get('node_rank')} ({info.get('host')}): " if nodes else ""
