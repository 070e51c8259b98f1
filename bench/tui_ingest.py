"""TUI ingest under a simulated fast run: events/s and memory, measured side by side in one process.

    python -m bench.tui_ingest [--events 200000]

Prints:
- store events/s: `RunState.ingest` alone (the cost of keeping the history);
- app events/s: the real app replaying a run directory through `RunLink` (file chunks -> messages -> store ->
  throttled redraws), headless; `app/store` is the share of the bare store's speed the full path keeps;
- store memory at N/10 and N events (tracemalloc): with bounded history the ratio stays near 1, not 10.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from nlirg_tui.app import NlirgApp
from nlirg_tui.state import RunState
from tests.tui.fixture_run import _step_event


def make_events(n: int) -> list[dict]:
    base = _step_event(1, 1)
    out = []
    for i in range(n):
        event = dict(base, seq=i, step=i + 1, loss=2.0 + (i % 97) / 50, weighted_loss=1.0 + (i % 89) / 60)
        out.append(event)
    out.append({"v": 1, "type": "end", "seq": n, "ts": 0.0, "status": "completed", "reason": "completed"})
    return out


def store_rate(events: list[dict]) -> float:
    state = RunState()
    start = time.perf_counter()
    for i in range(0, len(events), 1000):
        state.ingest(events[i:i + 1000])
    return len(events) / (time.perf_counter() - start)


def store_memory(events: list[dict]) -> int:
    tracemalloc.start()
    state = RunState()
    for i in range(0, len(events), 1000):
        state.ingest(events[i:i + 1000])
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del state
    return current


async def app_rate(run_dir: Path, n: int) -> float:
    app = NlirgApp(run_dir=run_dir)
    start = time.perf_counter()  # the replay starts while the app mounts
    async with app.run_test(size=(120, 40)) as pilot:
        while app.screen.link_mode != "replay" or app.screen.state.events_seen < n:
            await pilot.pause(0.01)
        return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    n = ap.parse_args().events
    events = make_events(n)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "bench-run"
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text("{}\n")
        with (run_dir / "events.jsonl").open("w") as fh:
            for e in events:
                fh.write(json.dumps(e) + "\n")
        bare = store_rate(events)
        full = asyncio.run(app_rate(run_dir, len(events)))
    small, large = store_memory(events[: n // 10]), store_memory(events)
    print(f"events: {len(events)}")
    print(f"store events/s: {bare:,.0f}")
    print(f"app events/s: {full:,.0f}  (app/store {full / bare:.2f})")
    print(f"store memory: {small / 1e6:.2f} MB at {n // 10} events, {large / 1e6:.2f} MB at {n} "
          f"(ratio {large / small:.2f}; unbounded would be ~10)")


if __name__ == "__main__":
    main()
