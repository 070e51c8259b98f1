"""`nlirg score` memory against corpus size: the peak RSS growth of a whole scoring run at 2k and at 20k records
(builtin:tiny), each in a fresh process, and their ratio. Streaming keeps it flat (target: ratio <= 1.5); a
scorer that holds every record, token and row grows with the corpus (ratio near 10 once the data dominates).

    python -m bench.score_memory [--quick] [--sizes 2000,20000] [--compare]

Each size runs `trainer_core.score.run.run` in a child process: RSS is read after the imports, then the peak
(VmHWM) after the run; growth = peak - baseline, so the model, the tokenizer and torch's buffers count in both
sizes alike; one CPU thread (with more, load from other processes stalls every op). `--compare` also runs
every size as one chunk (everything in memory at once, as before streaming).
`--quick` scores shorter records (max length 64) for a run of a few minutes on 2 loaded cores. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import io, json, sys
from pathlib import Path

import torch

from trainer_core.score.options import ScoreOptions
from trainer_core.score.run import run


def kb(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


data, out, max_length, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)  # more threads stall every op when other processes load the machine
base = kb("VmRSS")
opts = ScoreOptions(data=[data], model="builtin:tiny", out=Path(out), max_length=max_length, batch_size=16)
if chunk:
    opts.chunk = chunk
summary = run(opts, stream=io.StringIO(), progress_stream=io.StringIO())
print(json.dumps({"base_mb": base / 1024, "peak_mb": kb("VmHWM") / 1024, "records": summary["records"],
                  "wall_s": summary["wall_s"]}))
"""

WORDS = ("the answer is model data token loss quality review every record scored stream disk memory flat grows "
         "corpus line file batch chunk sort rank worst best clean drop keep edit").split()


def write_records(path: Path, n: int, words: int, seed: int = 0) -> None:
    """n alpaca records, questions and answers of a few to `words` words (varied lengths, as real data)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, words)))
            fh.write(json.dumps({"instruction": f"Question {i}: what about {rng.choice(WORDS)}?", "input": "",
                                 "output": answer}) + "\n")


def measure(data: Path, out: Path, max_length: int, chunk: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(data), str(out), str(max_length), str(chunk)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scoring {data} failed:\n{proc.stderr[-3000:]}")
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    got["growth_mb"] = round(got["peak_mb"] - got["base_mb"], 1)
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.score_memory", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short records (max length 64): a few minutes")
    ap.add_argument("--sizes", default="2000,20000", help="two record counts, small first")
    ap.add_argument("--compare", action="store_true", help="also each size as one chunk (no streaming)")
    args = ap.parse_args(argv)
    small, large = (int(x) for x in args.sizes.split(","))
    max_length, words = (64, 24) if args.quick else (256, 120)
    result: dict = {"model": "builtin:tiny", "max_length": max_length, "sizes": [small, large]}
    with tempfile.TemporaryDirectory(prefix="score-memory-") as tmp:
        runs = {}
        for n in (small, large):
            data = Path(tmp) / f"data-{n}.jsonl"
            write_records(data, n, words)
            variants = {"streamed": 0, **({"one_chunk": n} if args.compare else {})}
            for name, chunk in variants.items():
                got = measure(data, Path(tmp) / f"scores-{n}-{name}.jsonl", max_length, chunk)
                runs[(name, n)] = got
                print(f"{name:<9} {n:>6} records: peak RSS growth {got['growth_mb']:7.1f} MB "
                      f"(baseline {got['base_mb']:.0f} MB), {got['wall_s']:.0f} s", flush=True)
        for name in ("streamed", "one_chunk"):
            if (name, small) not in runs:
                continue
            a, b = runs[(name, small)]["growth_mb"], runs[(name, large)]["growth_mb"]
            prefix = "" if name == "streamed" else "one_chunk_"
            result.update({f"{prefix}rss_growth_mb_{small // 1000}k": a, f"{prefix}rss_growth_mb_{large // 1000}k": b,
                           f"{prefix}rss_ratio_{large // 1000}k_vs_{small // 1000}k": round(b / max(a, 1e-9), 3)})
    ratio = result[f"rss_ratio_{large // 1000}k_vs_{small // 1000}k"]
    result["target"] = "<= 1.5"
    result["ok"] = ratio <= 1.5
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
