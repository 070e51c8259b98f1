"""Corpus scoring speed: the batched pass against the same pass one record at a time, and what the per-token
extras (entropy, z-scores, modes) cost over the bare forward. Everything side by side in one process, on the
same model and records; the variants take turns in every repeat, so none gets the warmer cache.

    python -m bench.score_speed [--model builtin:smollm2-135m] [--records 64] [--batch-size 8] [--repeats 3]
    python -m bench.score_speed --quick        # builtin:tiny, 32 records: seconds, for a smoke test

- `batched`: `trainer_core.score.scoring.score_samples` at --batch-size, loss and entropy, then every record's modes
  (divergence with its z-scores and spans, similarity, filtered) — what `nlirg score` does per record, less
  writing the file;
- `one_at_a_time`: the same, batch size 1 (no padding, one forward per record);
- `bare`: the batched forward with the loss alone (no entropy, no modes): the floor the extras are measured on.

Tokens/s counts the input tokens of the records (prompt + answer). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from trainer_core.data.files import read_records
from trainer_core.score.encode import encode_records
from trainer_core.score.modes import divergence, filtered_score, similarity_score, spans
from trainer_core.score.options import ScoreOptions
from trainer_core.score.scoring import load_scorer, score_samples


def _modes(signals) -> None:
    """The per-record math of every row: smoothing, z-scores, labels, spans, the other modes' scores."""
    for sig in signals.values():
        loss, entropy = np.array(sig.losses), np.array(sig.entropies)
        spans(divergence(loss, entropy))
        similarity_score(loss, entropy)
        filtered_score(loss, entropy)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:smollm2-135m")
    ap.add_argument("--records", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--quick", action="store_true", help="builtin:tiny, 32 records, 2 repeats")
    args = ap.parse_args(argv)
    if args.quick:
        args.model, args.records, args.repeats = "builtin:tiny", 32, 2
    opts = ScoreOptions(data=["builtin:demo"], model=args.model, out=Path("unused.jsonl"), batch_size=args.batch_size)
    tokenizer, model, dtype = load_scorer(opts, torch.device("cpu"))
    records = read_records(["builtin:demo"])[:args.records]
    samples = [it.sample() for it in encode_records(tokenizer, records, args.max_length, with_bare=False)]
    tokens = sum(len(s.input_ids) for s in samples)
    pad = tokenizer.pad_token_id
    variants = {
        "batched": lambda: _modes(score_samples(model, samples, pad, args.batch_size, True, dtype)),
        "one_at_a_time": lambda: _modes(score_samples(model, samples, pad, 1, True, dtype)),
        "bare": lambda: score_samples(model, samples, pad, args.batch_size, False, dtype),
    }
    variants["bare"]()  # warm-up: first-touch allocations and kernel selection out of the timings
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            times[name].append(_timed(variants[name]))
    best = {name: min(ts) for name, ts in times.items()}
    result = {
        "model": args.model, "records": len(samples), "input_tokens": tokens, "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "tokens_per_s": {name: round(tokens / t, 1) for name, t in best.items()},
        "batched_vs_one_at_a_time": round(best["one_at_a_time"] / best["batched"], 2),
        "extras_overhead": round(best["batched"] / best["bare"] - 1, 4),
        "spread": {name: round(max(ts) / min(ts) - 1, 3) for name, ts in times.items()},
    }
    for name, t in best.items():
        print(f"{name:>14}: {tokens / t:10,.0f} tokens/s  (best of {args.repeats}: {t:.2f}s)", file=sys.stderr)
    print(f"batched vs one at a time: {result['batched_vs_one_at_a_time']:.2f}x (target >= 3x); "
          f"entropy + modes over the bare forward: {result['extras_overhead'] * 100:+.1f}% (target < 10%)",
          file=sys.stderr)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
