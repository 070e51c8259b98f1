"""Live link cost: steps/s with N clients attached vs none, and how many events/s one client ingests.

    python -m bench.live_overhead [--clients 100] [--blocks 31] [--block-steps 12] [--threads 1]

One trainer (builtin:tiny, `log_every=1`: an event every step, the worst case) runs in this process with its
real socket server. Short blocks of steps alternate between no client and N attached clients (default 3;
their connections spread over up to 4 client processes, each reading all of its connections with a selector
and decoding every line). Between blocks the trainer is paused (a real `pause` command) while the clients
attach or detach, and the first steps after each resume are left out, so both sides are measured under the
same conditions, side by side, interleaved. `steps_per_s_ratio` (target >= 0.95 with 100 clients) is the
median, over client blocks, of that block's wall-clock steps/s against the mean of its two no-client
neighbours, with its quartiles; `steps_per_s_noise` is the same comparison between neighbouring no-client
blocks: the resolution of the measurement here. `overhead` is the same for the median step time (which
leaves out the odd step a server thread holds up). `loop_overhead` is the part the training thread itself
pays: the extra time spent in `EventLog.emit` per step, over the no-client step time. `other_threads_cpu_ms`
is the CPU the process burns outside the training thread per step (the server's threads; with `--threads 1`
torch computes on the training thread): the live link's cost in CPU, which other load on a shared machine
moves far less than wall time.

Then one client replays a 20,000-event history (step events as the trainer writes them) and decodes each
line: `ingest_events_per_s`. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from trainer_core.live import protocol

SKIP_AFTER_RESUME = 2
"""Steps after a resume whose timing includes the pause or the clients' start-up."""


def client_main(path: str, connections: int) -> int:
    """A client process driven by stdin: `on` attaches `connections` clients (live stream from now), `off`
    detaches them, EOF quits.

    Attached, one thread reads every connection (a selector) and decodes every line, as a TUI would. The
    process lives through the whole bench, so attaching costs connects, not an interpreter start.
    """
    import selectors

    from trainer_core.live.client import LiveClient

    clients: list[LiveClient] = []
    reader: threading.Thread | None = None
    done = threading.Event()

    def drain(attached: list[LiveClient]) -> None:
        sel = selectors.DefaultSelector()
        for c in attached:
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ, c)
        while not done.is_set():
            for key, _ in sel.select(timeout=0.1):
                c = key.data
                try:
                    data = c.sock.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(c.sock)
                    continue
                for line in c._lines.feed(data):
                    protocol.decode(line)
        sel.close()

    for line in sys.stdin:
        if line.strip() == "on":
            clients = [LiveClient(path, timeout=600) for _ in range(connections)]
            for c in clients:
                c.send(protocol.replay(c.hello["last_seq"] + 1))
            done.clear()
            reader = threading.Thread(target=drain, args=(clients,), daemon=True)
            reader.start()
        elif line.strip() == "off" and reader is not None:
            done.set()
            reader.join()
            for c in clients:
                c.close()
            clients, reader = [], None
        print("ok", flush=True)
    return 0


def _client_processes(path: Path, clients: int) -> list[subprocess.Popen]:
    """`clients` connections spread over up to 4 processes (100 interpreters would measure the machine)."""
    n_proc = min(clients, 4)
    shares = [clients // n_proc + (i < clients % n_proc) for i in range(n_proc)]
    return [subprocess.Popen([sys.executable, "-m", "bench.live_overhead", "--client", str(path),
                              "--client-connections", str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True) for n in shares]


def _tiny_trainer(tmp: Path, steps: int):
    from trainer_core.config import build_config
    from trainer_core.live.events import EventLog
    from trainer_core.train.loop import Trainer

    data = tmp / "train.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for i in range(64):
            fh.write(json.dumps({"instruction": f"What is {i} plus {i}?", "output": f"It is {2 * i}."}) + "\n")
    overrides = ["model.path=builtin:tiny", "lora.enabled=false", "training.batch_size=4", "data.max_length=96",
                 "training.log_every=1", f"training.max_steps={steps}", "training.save_every=0",
                 "training.eval_every=0", "data.eval_fraction=0", f"data.train={data}"]
    cfg = build_config(None, overrides)
    run_dir = tmp / "run"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    trainer = Trainer(cfg, run_dir, events)
    trainer.setup()
    return trainer


def measure_overhead(tmp: Path, blocks: int, block_steps: int, n_clients: int) -> dict[str, Any]:
    from trainer_core.live.control import Command
    from trainer_core.live.server import start_server

    trainer = _tiny_trainer(tmp, 10 * blocks * block_steps)  # never ends by itself: stopped after the last block
    server = start_server(trainer)
    times: list[list[float]] = [[] for _ in range(blocks)]
    stamps: list[list[float]] = [[] for _ in range(blocks)]
    """Wall-clock time of each counted step's event: steps/s of a block, whatever holds the training thread up."""
    cpu: list[list[tuple[float, float]]] = [[] for _ in range(blocks)]
    """(training thread, whole process) CPU time at each counted step: what the other threads burn per step."""
    state = {"block": 0, "resumed_at": 0}

    emit_s = [0.0] * blocks
    steps = [0] * blocks

    def on_event(event: dict[str, Any], line: bytes) -> None:
        if event["type"] == "step":
            steps[state["block"]] += 1
            if event["step"] > state["resumed_at"] + SKIP_AFTER_RESUME:
                times[state["block"]].append(event["step_time_s"])
                stamps[state["block"]].append(time.perf_counter())
                cpu[state["block"]].append((time.thread_time(), time.process_time()))

    # Time the training thread spends in EventLog.emit (the write, and handing the event to every client).
    real_emit = trainer.events.emit

    def timed_emit(type_: str, **payload: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = real_emit(type_, **payload)
        emit_s[state["block"]] += time.perf_counter() - t0
        return out

    trainer.events.emit = timed_emit
    trainer.events.subscribe(on_event)
    clients = _client_processes(server.path, n_clients)

    def tell_clients(word: str) -> None:
        for proc in clients:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(word + "\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "ok"

    worker = threading.Thread(target=trainer.fit, name="fit")
    trainer.commands.put(Command("pause", id="bench-start"))
    worker.start()
    for block in range(blocks):
        _wait(lambda: trainer.status == "paused" or not worker.is_alive())
        tell_clients("on" if block % 2 else "off")
        state["block"] = block
        state["resumed_at"] = trainer.step
        trainer.commands.put(Command("resume", id=f"bench-{block}"))
        _wait(lambda: trainer.step >= state["resumed_at"] + block_steps or not worker.is_alive())
        trainer.commands.put(Command("pause", id=f"bench-pause-{block}"))
    _wait(lambda: trainer.status == "paused" or not worker.is_alive())
    trainer.commands.put(Command("stop", id="bench-stop"))
    worker.join()
    for proc in clients:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    server.close()
    trainer.events.close()
    medians = [statistics.median(t) for t in times]
    # Each client block against the mean of the no-client blocks on either side: slow drift of a shared
    # machine cancels out. `noise` is the same comparison between neighbouring no-client blocks.
    with_clients = [medians[i] / ((medians[i - 1] + medians[i + 1]) / 2) - 1 for i in range(1, blocks - 1, 2)]
    drift = [abs(medians[i + 2] / medians[i] - 1) for i in range(0, blocks - 2, 2)]
    rates = [(len(t) - 1) / (t[-1] - t[0]) for t in stamps]
    # CPU the process spends outside the training thread per step (server threads; torch runs on the training
    # thread with --threads 1): unlike wall time, barely moved by other load on the machine.
    other_cpu = [((c[-1][1] - c[0][1]) - (c[-1][0] - c[0][0])) / (len(c) - 1) for c in cpu]
    train_cpu = [(c[-1][0] - c[0][0]) / (len(c) - 1) for c in cpu]
    rate_ratios = [rates[i] / ((rates[i - 1] + rates[i + 1]) / 2) for i in range(1, blocks - 1, 2)]
    rate_drift = [abs(rates[i + 2] / rates[i] - 1) for i in range(0, blocks - 2, 2)]
    emit_per_step = [e / max(n, 1) for e, n in zip(emit_s, steps, strict=True)]
    emit_none, emit_clients = statistics.median(emit_per_step[0::2]), statistics.median(emit_per_step[1::2])
    return {
        "blocks": blocks, "block_steps": block_steps, "clients": n_clients,
        "steps_per_s_none": statistics.median(rates[0::2]), "steps_per_s_clients": statistics.median(rates[1::2]),
        "steps_per_s_ratio": statistics.median(rate_ratios),
        "steps_per_s_ratio_quartiles": statistics.quantiles(rate_ratios, n=4) if len(rate_ratios) > 1 else [],
        "steps_per_s_noise": statistics.median(rate_drift),
        "other_threads_cpu_ms_per_step_none": 1000 * statistics.median(other_cpu[0::2]),
        "other_threads_cpu_ms_per_step_clients": 1000 * statistics.median(other_cpu[1::2]),
        "training_thread_cpu_ms_per_step": 1000 * statistics.median(train_cpu),
        "step_ms_none": 1000 * statistics.median(medians[0::2]),
        "step_ms_clients": 1000 * statistics.median(medians[1::2]),
        "overhead": statistics.median(with_clients), "noise": statistics.median(drift),
        "emit_us_none": 1e6 * emit_none, "emit_us_clients": 1e6 * emit_clients,
        "loop_overhead": (emit_clients - emit_none) / statistics.median(medians[0::2]),
    }


def measure_ingest(tmp: Path, n_events: int) -> dict[str, Any]:
    """Replay throughput into one client that decodes every line (in this process: one server thread pair)."""
    from trainer_core.config import RunConfig
    from trainer_core.live.client import LiveClient
    from trainer_core.live.control import CommandQueue
    from trainer_core.live.events import EventLog, read_events
    from trainer_core.live.server import LiveServer
    from trainer_core.live.sockets import socket_path

    template = next(e for e in read_events(tmp / "run" / "events.jsonl") if e["type"] == "step")
    payload = {k: v for k, v in template.items() if k not in ("v", "type", "seq", "ts")}
    run_dir = tmp / "ingest"
    run_dir.mkdir()
    events = EventLog(run_dir / "events.jsonl")
    for i in range(n_events):
        events.emit("step", **{**payload, "step": i})
    owner = SimpleNamespace(run_dir=run_dir, events=events, commands=CommandQueue(), status="completed", step=0,
                            total_steps=n_events, cfg=RunConfig())
    server = LiveServer(owner, socket_path(run_dir))
    server.start()
    with LiveClient(server.path) as client:
        t0 = time.perf_counter()
        client.send(protocol.replay(0))
        got = 0
        while got < n_events:
            if protocol.is_event(client.read()):
                got += 1
        elapsed = time.perf_counter() - t0
    server.close()
    events.close()
    size = (run_dir / "events.jsonl").stat().st_size
    return {"ingest_events": n_events, "ingest_events_per_s": n_events / elapsed,
            "ingest_mb_per_s": size / elapsed / 1e6, "event_bytes": size // n_events}


def _wait(check, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the trainer did not reach the expected state")
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.live_overhead", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=31, help="alternating blocks (even: no client, odd: clients)")
    ap.add_argument("--clients", type=int, default=3, help="live clients attached in the client blocks")
    ap.add_argument("--block-steps", type=int, default=12)
    ap.add_argument("--ingest-events", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads for the trainer (0: torch's default); 1 takes the thread pool's wake-ups "
                         "out of the measurement on a VM where they dominate")
    ap.add_argument("--client", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--client-connections", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        return client_main(args.client, args.client_connections)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-", dir="/tmp"))
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        result = measure_overhead(Path(tmp), args.blocks, args.block_steps, args.clients)
        n = result["clients"]
        print(f"steps/s: {result['steps_per_s_none']:.1f} without clients, {result['steps_per_s_clients']:.1f} with "
              f"{n}: ratio {result['steps_per_s_ratio']:.3f} (quartiles "
              f"{', '.join(f'{q:.3f}' for q in result['steps_per_s_ratio_quartiles'])}; noise between no-client "
              f"blocks {100 * result['steps_per_s_noise']:.1f}%)", flush=True)
        print(f"CPU outside the training thread: {result['other_threads_cpu_ms_per_step_none']:.2f} ms/step without "
              f"clients, {result['other_threads_cpu_ms_per_step_clients']:.2f} ms with {n} (the training thread: "
              f"{result['training_thread_cpu_ms_per_step']:.2f} ms/step)", flush=True)
        print(f"step time: {result['step_ms_none']:.2f} ms without clients, {result['step_ms_clients']:.2f} ms "
              f"with {n} "
              f"(overhead {100 * result['overhead']:+.2f}%, noise {100 * result['noise']:.2f}%; "
              f"{result['blocks']} blocks of {result['block_steps']} steps)", flush=True)
        print(f"training thread: {result['emit_us_none']:.0f} us/step in EventLog.emit without clients, "
              f"{result['emit_us_clients']:.0f} us with {n} ({100 * result['loop_overhead']:+.3f}% of a step)",
              flush=True)
        result.update(measure_ingest(Path(tmp), args.ingest_events))
        print(f"ingest: {result['ingest_events_per_s']:,.0f} events/s ({result['ingest_mb_per_s']:.1f} MB/s, "
              f"{result['event_bytes']} bytes/event) into one decoding client", flush=True)
    print(json.dumps({"bench": "live_overhead", **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
