"""The data path at scale: cold tokenization against a one-by-one loop, a warm start, and the memory it keeps.

    python -m bench.data_pipeline [--quick] [--records N] [--num-proc N]

A synthetic alpaca corpus (100k records; --quick 20k) is written from the bundled demo samples, each record
made unique by a number. With the SmolLM2 tokenizer:

- `cold`: `prepare_data` into an empty cache (read, normalise, tokenize with `data.num_proc` workers, save);
- `baseline`: the way every launch tokenized before the cache: one record at a time, rendering each turn with
  `apply_chat_template` and tokenizing each piece with the tokenizer's `__call__`, over the same records (a
  sample of them, timed side by side in this run);
- `warm`: `prepare_data` again with the same inputs (a cache hit: the tables are only memory-mapped);
- `data_rss_mb`: in a fresh process, the RSS growth of a warm `prepare_data` plus iterating one epoch of
  collated batches (what a trainer holds for its data; the old path held every record and sample as Python
  lists). Measured after `datasets` is imported (`import_rss_mb`, the same for any corpus size). Pages of the
  mapped tables that the epoch touched count in RSS, so this is an upper bound.
- `cold_1proc`: the cold build again with `data.num_proc=1`, so the gain of the batch encoding and of the worker
  processes can be told apart (on a loaded machine the workers gain little: they share the same cores).

- `encode_speedup`: the per-process gain alone, robust to the load of a shared machine: the batch encoder
  (`tokenize.tokenize_batch`) and the one-by-one loop alternate over the same slices of records in this
  process, and the ratio is of their summed times.

The baseline is timed before and after the cold builds and averaged, since other work on a shared machine
moves both.

The last line is one JSON object: cold_speedup (cold samples/s over baseline samples/s), warm_s, data_rss_mb,
samples, and the figures they come from. Targets on a 2-core machine: cold_speedup >= 3, warm_s <= 3 and
data_rss_mb <= 150 at 100k samples.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainer_core.train.data.tokenize import IGNORE

BASELINE_RECORDS = 3000
"""Records the one-by-one loop times (its rate is per record, so a sample of the corpus is enough)."""


def write_corpus(path: Path, n: int) -> Path:
    from trainer_core.data.files import builtin_data_path

    demo = [json.loads(line) for line in builtin_data_path("builtin:demo").read_text(encoding="utf-8").splitlines()]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            rec = dict(demo[i % len(demo)])
            rec["instruction"] = f"{rec['instruction']} (#{i})"
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def config(data: Path, cache: Path, num_proc: int):
    from trainer_core.config import build_config

    return build_config(None, [
        "model.path=builtin:smollm2-135m", f"data.train={data}", f"data.cache_dir={cache}", "data.max_length=512",
        f"data.num_proc={num_proc}"])


def baseline_encode(tokenizer, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """The pre-cache encoding of one record: three template renders and one tokenizer call per piece."""
    eot = tokenizer.eos_token
    pieces, done = [], ""
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False, add_generation_prompt=False)
        answer = full[len(prompt):]
        cut = answer.find(eot)
        pieces += [(prompt[len(done):], False), (answer[: cut + len(eot)], True), (answer[cut + len(eot):], False)]
        done = full
    pieces.append((tokenizer.apply_chat_template(messages, tokenize=False)[len(done):], False))
    ids: list[int] = []
    labels: list[int] = []
    for text, target in pieces:
        if text:
            tok = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += tok
            labels += tok if target else [IGNORE] * len(tok)
    return ids, labels


def baseline_rate(tokenizer, data: Path) -> float:
    from trainer_core.data.files import read_records

    records = read_records([str(data)])[:BASELINE_RECORDS]
    started = time.perf_counter()
    for rec in records:
        baseline_encode(tokenizer, rec.messages)
    return len(records) / (time.perf_counter() - started)


def encode_speedup(tokenizer, data: Path, rounds: int = 4, size: int = 500) -> float:
    """Batch encoding against the one-by-one loop, alternating over the same record slices in this process."""
    from trainer_core.data.files import read_records
    from trainer_core.train.data.tokenize import tokenize_batch

    records = read_records([str(data)])[: rounds * size]
    old = new = 0.0
    for r in range(rounds):
        chunk = records[r * size:(r + 1) * size]
        started = time.perf_counter()
        for rec in chunk:
            baseline_encode(tokenizer, rec.messages)
        old += time.perf_counter() - started
        batch = {"messages": [rec.messages for rec in chunk], "text": [None] * len(chunk),
                 "file": [0] * len(chunk), "line": [rec.line for rec in chunk]}
        started = time.perf_counter()
        for i in range(0, len(chunk), 256):
            part = {k: v[i:i + 256] for k, v in batch.items()}
            tokenize_batch(part, list(range(i, i + len(part["line"]))), tokenizer=tokenizer, kind="sft",
                           max_length=512, source=0, file_names=[str(data)])
        new += time.perf_counter() - started
    return old / new


def rss_child(data: Path, cache: Path, num_proc: int) -> dict:
    """In this (fresh) process: RSS growth of a warm prepare plus one epoch of collated batches."""
    import psutil

    from trainer_core.train.data.prepare import make_loader, prepare_data
    from trainer_core.train.model.load import load_tokenizer, resolve

    cfg = config(data, cache, num_proc)
    tokenizer = load_tokenizer(resolve(cfg.model), cfg.model)
    proc = psutil.Process()
    start = proc.memory_info().rss
    import datasets  # noqa: F401 - the library's own footprint is not the corpus's

    before = proc.memory_info().rss
    started = time.perf_counter()
    prepared = prepare_data(cfg, tokenizer)
    warm_s = time.perf_counter() - started
    loader = make_loader(prepared, cfg, 1, 0, tokenizer.pad_token_id)
    tokens = 0
    for b in range(loader.batches_per_epoch):
        tokens += loader.micro_batch(0, b).input_tokens
    return {"rss_mb": (proc.memory_info().rss - before) / 2**20, "import_rss_mb": (before - start) / 2**20,
            "warm_fresh_s": warm_s, "cached": prepared.cached, "epoch_tokens": tokens}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20k records instead of 100k")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--num-proc", type=int, default=0, help="data.num_proc (0 = one per core)")
    ap.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        print(json.dumps(rss_child(Path(args.rss_child[0]), Path(args.rss_child[1]), args.num_proc)))
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from trainer_core.train.data.prepare import prepare_data
    from trainer_core.train.model.load import load_tokenizer, resolve

    n = args.records or (20_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory(prefix="nlirg-bench-data-") as tmp:
        data, cache = write_corpus(Path(tmp) / "corpus.jsonl", n), Path(tmp) / "cache"
        cfg = config(data, cache, args.num_proc)
        tokenizer = load_tokenizer(resolve(cfg.model), cfg.model)
        per_process = encode_speedup(tokenizer, data)
        print(f"batch encoding vs one by one, one process, interleaved: {per_process:.2f}x", flush=True)
        base_before = baseline_rate(tokenizer, data)
        print(f"baseline (one by one): {base_before:,.0f} samples/s over {BASELINE_RECORDS:,} records", flush=True)
        started = time.perf_counter()
        one = prepare_data(config(data, Path(tmp) / "cache-1proc", 1), tokenizer)
        one_s = time.perf_counter() - started
        print(f"cold, num_proc=1: {n / one_s:,.0f} samples/s ({one_s:.1f} s)", flush=True)
        started = time.perf_counter()
        cold = prepare_data(cfg, tokenizer)
        cold_s = time.perf_counter() - started
        print(f"cold: {n:,} records in {cold_s:.1f} s = {n / cold_s:,.0f} samples/s "
              f"({cold.report['seconds']:.1f} s tokenizing)", flush=True)
        base_after = baseline_rate(tokenizer, data)
        base = (base_before + base_after) / 2
        print(f"baseline again: {base_after:,.0f} samples/s; mean {base:,.0f}", flush=True)
        assert one.train[len(one.train) - 1].input_ids == cold.train[len(cold.train) - 1].input_ids
        started = time.perf_counter()
        warm = prepare_data(cfg, tokenizer)
        warm_s = time.perf_counter() - started
        assert warm.cached and warm.key == cold.key
        print(f"warm (cache hit): {warm_s:.2f} s", flush=True)
        child = subprocess.run([sys.executable, "-m", "bench.data_pipeline", "--num-proc", str(args.num_proc),
                                "--rss-child", str(data), str(cache)], capture_output=True, text=True, check=True)
        rss = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"fresh process: warm prepare {rss['warm_fresh_s']:.2f} s, RSS growth with one epoch of batches "
              f"{rss['rss_mb']:.0f} MB ({rss['epoch_tokens']:,} tokens)", flush=True)
        print(json.dumps({"cold_speedup": round(n / cold_s / base, 2), "cold_1proc_speedup": round(n / one_s / base, 2),
                          "encode_speedup": round(per_process, 2),
                          "warm_s": round(warm_s, 2), "import_rss_mb": round(rss["import_rss_mb"], 1),
                          "warm_fresh_process_s": round(rss["warm_fresh_s"], 2), "data_rss_mb": round(rss["rss_mb"], 1),
                          "samples": n, "cold_samples_per_s": round(n / cold_s), "baseline_samples_per_s": round(base),
                          "train_rows": cold.report["train_rows"], "num_proc": args.num_proc or os.cpu_count()}))


if __name__ == "__main__":
    main()
