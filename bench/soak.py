"""The soak: a live run of builtin:tiny under a crowd of clients for minutes, then what leaked and what was lost.

    python -m bench.soak [--minutes N] [--quick] [--clients 20]

A real trainer (`nlirg train --detach`, `log_every=1`, a checkpoint every 50 steps) runs in a run folder on a
small tmpfs of its own (mounted here when run as root; elsewhere the disk phase is skipped and says so).
While it trains:

- `--clients` clients (threads of this process) each loop: connect, replay from 0 and read up to the newest
  event of the moment, send commands (valid: ping, set; invalid: an unknown command, a bad key, a value of the
  wrong type, a line that is not JSON) and read their answers, detach;
- one client reads slowly (one message every 50 ms); when the trainer drops it, it reconnects from its last seq;
- once, half way, the tmpfs is filled to the last byte for 15 s, then emptied.

Every event a client reads is checked against events.jsonl (its seq and type, and the step of step events):
`lost_events` counts the seqs a client skipped or read wrong (replays must be contiguous from 0; the slow reader
must be contiguous across its reconnects). The trainer's RSS, open fds and threads are read from /proc with
every client detached, after the first minute (so caches, the socket server's threads and the first replays are
warm; a quarter of the run in `--quick`) and at the end: `rss_growth_mb`, `fd_growth`, `threads_growth`.
`step_ratio` is the trainer's steps/s while the crowd runs against a quiet window (no client) measured right
after the first minute. Targets: rss growth < 50 MB, fd and thread growth 0, lost 0; step_ratio is reported.
The load of other processes on a shared machine moves step_ratio; the resource counts do not depend on it.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from trainer_core.live import protocol
from trainer_core.live.client import LiveClient
from trainer_core.live.rundir import read_json

TINY = ["model.path=builtin:tiny", "lora.enabled=false", "training.lr=0.003", "training.batch_size=2",
        "data.max_length=96", "training.log_every=1", "training.max_steps=10000000", "training.save_every=50",
        "training.eval_every=0", "data.eval_fraction=0"]
INVALID: list[bytes] = [
    protocol.encode(protocol.command("bad-1", "explode")),
    protocol.encode(protocol.command("bad-2", "set", {"no_such_key": 1})),
    protocol.encode(protocol.command("bad-3", "set", {"lr_scale": "fast"})),
    b"this is not json\n",
]
QUIET_S = 20.0
FILL_HOLD_S = 15.0
SETTLE_S = 3.0
"""Wait after the crowd detaches before /proc is read (the server's connection threads end)."""


# --------------------------------------------------------------------------- the truth: events.jsonl
class EventsFile:
    """events.jsonl read incrementally, shared by every client thread: (type, step) by seq."""

    WAIT_S = 120.0
    """How long a check waits for events.jsonl to reach a seq a client read (a full disk holds its lines back)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.events: list[tuple[str, int | None]] = []
        self._offset = 0
        self._partial = b""

    def upto(self, seq: int) -> list[tuple[str, int | None]]:
        """The events, once they reach `seq` (or after WAIT_S)."""
        deadline = time.monotonic() + self.WAIT_S
        while True:
            with self.lock:
                if len(self.events) > seq or not self._read_more() and time.monotonic() > deadline:
                    return self.events
            if len(self.events) <= seq:
                time.sleep(0.1)

    def refresh(self) -> list[tuple[str, int | None]]:
        """Every event written so far."""
        with self.lock:
            while self._read_more():
                pass
            return self.events

    def _read_more(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        if not data:
            return False
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            if line.strip():
                event = json.loads(line)
                assert event["seq"] == len(self.events), f"events.jsonl: seq {event['seq']} at line {len(self.events)}"
                self.events.append((event["type"], event.get("step")))
        return True


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lost = 0
        self.events = 0
        self.loops = 0
        self.drops = 0
        self.failures = 0
        self.refused_disk_full = 0
        self.problems: list[str] = []

    def add(self, **counts: int) -> None:
        with self.lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def problem(self, text: str, lost: int = 1) -> None:
        """Something went wrong; `lost` events of it (0: a wrong answer or a broken connection)."""
        with self.lock:
            self.lost += lost
            self.failures += int(lost == 0)
            kind = "lost" if lost else "failed"
            if sum(p.startswith(kind) for p in self.problems) < 10:
                self.problems.append(f"{kind}: {text}")


Seen = list[tuple[int, str, int | None]]
"""(seq, type, step) of the events one connection read, in order."""


def check_events(truth: EventsFile, seen: Seen, first: int, tally: Tally, who: str) -> int:
    """Count what `seen` lost against events.jsonl: seqs must run on from `first` and match the file. Returns the
    next expected seq. Called after reading, so a check never holds up a connection."""
    expect = first
    for seq, kind, step in seen:
        if seq != expect:
            tally.problem(f"{who}: expected seq {expect}, got {seq} ({kind})", lost=max(seq - expect, 1))
        else:
            known = truth.upto(seq)
            if seq >= len(known) or known[seq] != (kind, step):
                tally.problem(f"{who}: seq {seq} is {kind}/{step}, events.jsonl has "
                              f"{known[seq] if seq < len(known) else 'nothing'}")
        expect = seq + 1
    tally.add(events=len(seen))
    return expect


def event_of(msg: dict[str, Any]) -> tuple[int, str, int | None]:
    return msg.get("seq", -1), msg["type"], msg.get("step")


# --------------------------------------------------------------------------- the crowd
def crowd_client(sock_path: str, truth: EventsFile, tally: Tally, running: threading.Event, who: str) -> None:
    n = 0
    while running.is_set():
        n += 1
        try:
            client = LiveClient(sock_path, timeout=30.0)
        except BlockingIOError:  # a full listen queue: retry, as every client does
            time.sleep(0.1)
            continue
        except OSError:
            return  # the trainer is gone
        try:
            target = client.hello["last_seq"]
            client.send(protocol.replay(0))
            seen: Seen = []
            while not seen or seen[-1][0] < target:
                msg = client.read()
                if protocol.is_event(msg):
                    seen.append(event_of(msg))
            ping = client.command("ping", timeout=60)
            setting = client.command("set", {"flag_threshold": 9.0 + (n % 3) * 0.5}, timeout=120)
            refused = str(setting.get("error") or "")
            if "No space left" in refused:  # a set is saved with the run: refused, rightly, while the disk is full
                tally.add(refused_disk_full=1)
                setting = {"ok": True}
            answers = [ping.get("ok") or ping.get("error"), setting.get("ok") or setting.get("error")]
            for line in INVALID:
                client.sock.sendall(line)
            got = 0
            deadline = time.monotonic() + 60
            while got < len(INVALID) and time.monotonic() < deadline:
                msg = client.read()
                if msg.get("type") == "error" or (msg.get("type") == "ack" and not msg.get("ok")):
                    got += 1
            answers.append(got == len(INVALID))
            if answers != [True, True, True]:
                tally.problem(f"{who} loop {n}: answers {answers}", lost=0)
            tally.add(loops=1)
        except (EOFError, OSError, TimeoutError) as exc:
            if running.is_set():
                tally.problem(f"{who} loop {n}: {type(exc).__name__}: {exc}", lost=0)
            seen = []
        finally:
            client.close()
        check_events(truth, seen, 0, tally, f"{who} loop {n}")


def slow_reader(sock_path: str, truth: EventsFile, tally: Tally, running: threading.Event) -> None:
    """Reads one message every 50 ms; dropped for it, reconnects and replays from its last seq."""
    expect = 0
    while running.is_set():
        try:
            client = LiveClient(sock_path, timeout=30.0)
        except BlockingIOError:
            time.sleep(0.1)
            continue
        except OSError:
            return
        seen: Seen = []
        try:
            client.send(protocol.replay(expect))
            while running.is_set():
                msg = client.read()
                if protocol.is_event(msg):
                    seen.append(event_of(msg))
                    if len(seen) >= 200:
                        expect = check_events(truth, seen, expect, tally, "slow reader")
                        seen = []
                time.sleep(0.05)
        except (EOFError, OSError):
            tally.add(drops=1)
        finally:
            client.close()
        expect = check_events(truth, seen, expect, tally, "slow reader")


# --------------------------------------------------------------------------- the trainer and its disk
def proc_reading(pid: int) -> dict[str, float]:
    status = {k: v for k, _, v in (line.partition(":") for line in Path(f"/proc/{pid}/status").read_text()
                                   .splitlines())}
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def settled_reading(pid: int, timeout: float = 60.0) -> dict[str, float]:
    """`proc_reading` once threads and fds hold still for 2 s (the server's connection threads end a moment after
    their clients leave, later under load)."""
    last = proc_reading(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = proc_reading(pid)
        if (now["threads"], now["fds"]) == (last["threads"], last["fds"]):
            return now
        last = now
    return last


def mount_tmpfs(folder: Path, size_mb: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def fill(disk: Path) -> Path:
    """Write zeros until the disk is full to the last byte; the file is removed by the caller."""
    filler = disk / f"filler-{uuid.uuid4().hex}"
    with open(filler, "wb", buffering=0) as fh:
        for block in (1 << 20, 65536, 512):
            try:
                while True:
                    fh.write(b"\0" * block)
            except OSError:
                pass
    return filler


def step_rate(steps: list[tuple[float, int]], start: float, end: float) -> float:
    """Steps per second between two times, from (time, step) of the step events a watcher saw."""
    inside = [(t, s) for t, s in steps if start <= t <= end]
    if len(inside) < 2:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / max(inside[-1][0] - inside[0][0], 1e-9)


def watcher(sock_path: str, steps: list[tuple[float, int]], running: threading.Event) -> None:
    """Live step events as they come (the run's own TUI would be attached the same way)."""
    with LiveClient(sock_path, timeout=30.0) as client:
        client.send(protocol.replay(client.hello["last_seq"] + 1))
        while running.is_set():
            try:
                msg = client.read()
            except (EOFError, OSError):
                return
            if msg.get("type") == "step":
                steps.append((time.monotonic(), msg["step"]))


def wait_for(check, what: str, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"soak: timed out waiting for {what}")


def start_trainer(root: Path, data: Path, work: Path) -> Path:
    exe = Path(sys.executable).with_name("nlirg")
    sets = [*TINY, f"data.train={data}", f"output.root={root}"]
    proc = subprocess.run([str(exe), "train", *[a for s in sets for a in ("--set", s)], "--detach"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"soak: the trainer did not start:\n{proc.stderr}")
    return Path(proc.stdout.strip().splitlines()[-1])


def crowd(sock_path: str, truth: EventsFile, tally: Tally, clients: int) -> tuple[threading.Event, list]:
    running = threading.Event()
    running.set()
    threads = [threading.Thread(target=crowd_client, args=(sock_path, truth, tally, running, f"client {i}"),
                                daemon=True) for i in range(clients)]
    threads.append(threading.Thread(target=slow_reader, args=(sock_path, truth, tally, running), daemon=True))
    for t in threads:
        t.start()
    return running, threads


def stop_crowd(running: threading.Event, threads: list) -> None:
    running.clear()
    for t in threads:
        t.join(timeout=120)
    time.sleep(SETTLE_S)


def write_data(path: Path, n: int = 48) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"instruction": f"What is {i} plus {i}?", "input": "",
                                 "output": f"The answer is {2 * i}."}) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--quick", action="store_true", help="2 minutes")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--disk-mb", type=int, default=96, help="size of the run folder's tmpfs")
    args = ap.parse_args(argv)
    minutes = 2.0 if args.quick else args.minutes
    warm_s = min(60.0, minutes * 60 / 4)
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-soak-", dir="/tmp"))  # our own sockets
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    disk = work / "disk"
    mounted = os.geteuid() == 0 and mount_tmpfs(disk, args.disk_mb)
    if not mounted:
        disk.mkdir(exist_ok=True)
    data = work / "train.jsonl"
    write_data(data)
    run_dir = start_trainer(disk / "runs", data, work)
    pid = None
    result: dict[str, Any] = {"error": "the soak did not finish"}
    try:
        sock_path = wait_for(lambda: (read_json(run_dir / "trainer.json") or {}).get("socket"), "the socket")
        pid = int(read_json(run_dir / "trainer.json")["pid"])
        truth = EventsFile(run_dir / "events.jsonl")
        wait_for(lambda: any(t == "step" for t, _ in truth.refresh()), "the first step")
        steps: list[tuple[float, int]] = []
        watch_on = threading.Event()
        watch_on.set()
        threading.Thread(target=watcher, args=(sock_path, steps, watch_on), daemon=True).start()
        tally = Tally()
        t0 = time.monotonic()
        print(f"soak: trainer pid {pid}, run {run_dir}, {args.clients} clients + a slow reader, {minutes:g} min; "
              f"disk phase {'on a ' + str(args.disk_mb) + ' MB tmpfs' if mounted else 'skipped (not root)'}",
              flush=True)
        running, threads = crowd(sock_path, truth, tally, args.clients)
        time.sleep(max(0.0, warm_s - (time.monotonic() - t0)))
        stop_crowd(running, threads)
        base = settled_reading(pid)
        quiet_start = time.monotonic()
        time.sleep(QUIET_S)
        quiet = step_rate(steps, quiet_start, time.monotonic())
        print(f"soak: after {warm_s:.0f} s: {base}, quiet {quiet:.1f} steps/s", flush=True)
        running, threads = crowd(sock_path, truth, tally, args.clients)
        load_start = time.monotonic()
        end = t0 + minutes * 60
        disk_phase = "skipped (not root: no tmpfs)"
        if mounted:
            time.sleep(max(0.0, (load_start + end) / 2 - time.monotonic() - FILL_HOLD_S / 2))
            filler = fill(disk)
            time.sleep(FILL_HOLD_S)
            filler.unlink()
            disk_phase = f"filled for {FILL_HOLD_S:g} s, then emptied"
        time.sleep(max(0.0, end - time.monotonic()))
        loaded = step_rate(steps, load_start, time.monotonic())
        stop_crowd(running, threads)
        final = settled_reading(pid)
        alive = read_json(run_dir / "trainer.json") or {}
        result = {
            "minutes": minutes, "clients": args.clients, "client_loops": tally.loops, "events_checked": tally.events,
            "slow_reader_drops": tally.drops, "client_failures": tally.failures,
            "set_refused_disk_full": tally.refused_disk_full, "disk": disk_phase,
            "trainer_status": alive.get("status"),
            "rss_growth_mb": round(final["rss_mb"] - base["rss_mb"], 1),
            "fd_growth": final["fds"] - base["fds"], "threads_growth": final["threads"] - base["threads"],
            "lost_events": tally.lost, "step_ratio": round(loaded / quiet, 3) if quiet else None,
            "steps_per_s_quiet": round(quiet, 2), "steps_per_s_loaded": round(loaded, 2),
            "baseline": base, "final": final, "problems": tally.problems,
        }
        result["ok"] = (result["rss_growth_mb"] < 50 and tally.failures == 0 and result["fd_growth"] <= 0
                        and result["threads_growth"] <= 0 and result["lost_events"] == 0
                        and alive.get("status") == "running")
        watch_on.clear()
    finally:
        if pid is not None:
            try:
                with LiveClient(read_json(run_dir / "trainer.json")["socket"], timeout=30.0) as c:
                    c.command("stop", timeout=120)
                wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the trainer to stop", timeout=120)
            except (OSError, EOFError, TimeoutError, SystemExit, KeyError, TypeError):
                if Path(f"/proc/{pid}").exists():
                    os.kill(pid, 9)
        log = run_dir / "trainer.log"
        if result.get("error") and log.exists():
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
