"""Flagged samples of long contexts are bounded where they are made (issue 24): a window of tokens around the
zeroed ones, their count, and events well under the protocol's line limit, so nothing is ever cut."""

from __future__ import annotations

import json

from tests.helpers import TINY, train_in_process
from trainer_core.live.events import read_events
from trainer_core.live.protocol import MAX_LINE_BYTES
from trainer_core.train.telemetry.flag_window import WINDOW_TOKENS, event_chunks, window


def test_long_flagged_samples_carry_a_window_and_their_length(tmp_path):
    data = tmp_path / "long.jsonl"
    with data.open("w") as fh:
        for i in range(4):
            fh.write(json.dumps({"instruction": f"Tell a long story {i}.", "output": "once upon a time " * 90}) + "\n")
    run_dir = tmp_path / "run"
    train_in_process(run_dir, [*TINY, f"data.train={data}", "data.max_length=1024", "training.batch_size=1",
                               "training.max_steps=1", "training.eval_at_start=false", "training.save_every=0",
                               "telemetry.flag_threshold=0", "nlirg.hard_min=5.0", "nlirg.loss_deadline=6.95"])
    samples = [s for e in read_events(run_dir / "events.jsonl") if e["type"] == "flagged" for s in e["samples"]]
    assert samples
    for s in samples:
        assert s["length"] > WINDOW_TOKENS and len(s["tokens"]) == WINDOW_TOKENS  # the sample is ~1000 tokens
        assert len(s["losses"]) == len(s["weights"]) == len(s["zones"]) == WINDOW_TOKENS
        assert 0 <= s["offset"] <= s["length"] - WINDOW_TOKENS
        if s["zeroed_tokens"]:
            assert 3 in s["zones"]  # the window shows zeroed tokens
    filed = [json.loads(line) for line in (run_dir / "flagged.jsonl").read_text().splitlines()]
    assert [(f["sample_id"], f["offset"], len(f["tokens"])) for f in filed] == \
        [(s["sample_id"], s["offset"], len(s["tokens"])) for s in samples]
    lines = (run_dir / "events.jsonl").read_bytes().splitlines()
    assert max(len(line) for line in lines) < MAX_LINE_BYTES // 2
    assert b"line limit" not in (run_dir / "events.jsonl").read_bytes()  # nothing was cut


def test_the_window_starts_before_the_first_zeroed_token_and_events_are_split_by_size():
    n = 5000
    zones = [None] * n
    for t in (3000, 3100):
        zones[t] = 3
    start, end = window([1.0] * n, zones)
    assert (start, end) == (3000 - 64, 3000 - 64 + WINDOW_TOKENS)
    assert window([1.0] * 100, [None] * 100) == (0, 100)
    losses = [0.5] * n
    losses[4990] = 9.0  # no zeroed token: the worst one
    assert window(losses, [None] * n) == (n - WINDOW_TOKENS, n)
    sample = {"tokens": ["abcd"] * WINDOW_TOKENS}
    chunks = event_chunks([sample] * 40, budget=100_000)
    assert sum(len(c) for c in chunks) == 40 and all(len(c) == 4 for c in chunks)
