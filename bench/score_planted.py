"""Evidence for docs/score.md "Which mode finds bad records": recall of planted records per mode and kind.

    python -m bench.score_planted [--model builtin:smollm2-135m] [--out-dir score-planted] [--tuned MODEL ...]

The set: 200 clean records of `builtin:demo` (those `corrupted.json` does not list), 40 demo records corrupted
here in five kinds (8 each, chosen by a fixed seed from later demo records): `wrong_answer` (another record's
answer), `garbled` (each word's characters shuffled), `truncated` (the answer cut at 40%, mid-word),
`mis_templated` (an Alpaca template leaked into the answer) and `fluent_false` (every digit changed: the same
fluent answer stating other numbers), plus 30 short-label NLI records (`蕴含` / `矛盾` / `中立`) of which 6 carry
the wrong label (`label_flip`). One scoring pass (and the bare pass for ifd) ranks the records in every mode
exactly as `nlirg score --mode MODE` would, and two references from the same passes (`mean_loss`, and
`min_rank(ifd,filtered_rank)`); with `--tuned`, a second model's loss gives the `tuned_gain` ranking
(mean answer loss under the tuned model / under the base: the records the tuning helped least first). Recall of a
kind = its planted records in the worst 5% (10%) of all records / its planted records. The last line is JSON.
Each pass is kept in OUT_DIR/signals/ and reused by the next run (bench/signal_cache.py; --no-cache recomputes),
so `--tuned` (repeatable) can be added later without repeating the base model's passes.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import torch

from bench.score_evidence import CLEAN
from bench.signal_cache import cache_key, cached
from trainer_core.data.files import builtin_data_path, read_records
from trainer_core.score.encode import encode_records
from trainer_core.score.modes import MODES
from trainer_core.score.options import ScoreOptions
from trainer_core.score.output import rank_rows
from trainer_core.score.report import build_row
from trainer_core.score.scoring import Signals, score_samples, scoring_model, scoring_tokenizer

PER_KIND = 8
KINDS = ("wrong_answer", "garbled", "truncated", "mis_templated", "fluent_false")
NLI = "判断前提与假设之间的关系，只回答“蕴含”、“矛盾”或“中立”。"
FACTS = [  # premise, entailed, contradicted, neutral
    ("小明在公园里跑步。", "小明在户外运动。", "小明正在家里睡觉。", "小明在为马拉松比赛训练。"),
    ("订单已经发货了。", "包裹已经离开仓库。", "订单还没有发货。", "包裹明天就能送到。"),
    ("会议改到下午三点。", "会议不在上午开。", "会议时间没有变化。", "会议会开两个小时。"),
    ("今天下了一整天的雨。", "今天天气不好。", "今天阳光明媚，没有下雨。", "明天也会下雨。"),
    ("商品支持七天无理由退货。", "买后几天内可以退货。", "商品一经售出概不退换。", "退货的运费由商家承担。"),
    ("火车晚点了半小时。", "火车没有准时到达。", "火车提前到站了。", "车上乘客很多。"),
    ("小王养了一只猫。", "小王有宠物。", "小王从没养过动物。", "小王的猫是白色的。"),
    ("这本书已经卖完了。", "现在买不到这本书。", "这本书库存充足。", "这本书下个月会再版。"),
    ("机票已经改签到明天。", "他今天不坐这班飞机。", "机票没有任何变更。", "明天的航班是早上八点。"),
    ("小张通过了驾驶考试。", "小张拿到了驾照。", "小张考试没有通过。", "小张下周会买车。"),
]
LABELS = ("蕴含", "矛盾", "中立")
FLIPS = 6
HELDOUT = "heldout-demo.jsonl"
"""The 54 clean demo records the set does not use (neither a clean record nor the original of a planted one): data
to tune a `--tuned` model on the domain without its having seen any scored record or the truth a planted one
hides."""
FUSED = "min_rank(ifd,filtered_rank)"
"""Two references beside the modes, from the same passes: `mean_loss` (the plain mean answer loss, worst first)
and FUSED, each record at the better of its ifd and filtered_rank ranks (a record either mode finds counts)."""


def _answer(rec: dict) -> str:
    return rec["output"] if "output" in rec else rec["messages"][-1]["content"]


def _with_answer(rec: dict, answer: str) -> dict:
    if "output" in rec:
        return {**rec, "output": answer}
    return {**rec, "messages": [*rec["messages"][:-1], {**rec["messages"][-1], "content": answer}]}


def corrupt(kind: str, rec: dict, other: dict, rng: random.Random) -> dict:
    text = _answer(rec)
    if kind == "wrong_answer":
        return _with_answer(rec, _answer(other))
    if kind == "garbled":
        return _with_answer(rec, " ".join("".join(rng.sample(w, len(w))) for w in text.split(" ")))
    if kind == "truncated":
        return _with_answer(rec, text[:max(4, int(len(text) * 0.4))])
    if kind == "mis_templated":
        return _with_answer(rec, f"### Response:\n{text}\n\n### Instruction:\n")
    return _with_answer(rec, re.sub(r"\d", lambda m: str((int(m.group()) + 3) % 10), text))


def write_planted(path: Path) -> dict[int, str]:
    """The data file, and beside it HELDOUT; returns the kind of every planted line (1-based)."""
    demo = builtin_data_path("builtin:demo")
    corrupted = {c["line"] for c in json.loads((demo.parent / "corrupted.json").read_text(encoding="utf-8"))}
    rows = [json.loads(line) for n, line in enumerate(demo.read_text(encoding="utf-8").splitlines(), 1)
            if n not in corrupted]
    clean, spare = rows[:CLEAN], rows[CLEAN:]
    rng = random.Random(25)
    with_digits = [r for r in spare if re.search(r"\d", _answer(r))]
    others = [r for r in spare if not re.search(r"\d", _answer(r))]
    planted: list[tuple[str, dict]] = []
    for kind in KINDS:
        pool = with_digits if kind == "fluent_false" else others
        for rec in rng.sample(pool, PER_KIND):
            pool.remove(rec)
            planted.append((kind, corrupt(kind, rec, rng.choice(rows[:CLEAN]), rng)))
    unused = {id(r) for r in with_digits + others}
    path.with_name(HELDOUT).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in spare
                                               if id(r) in unused), encoding="utf-8")
    nli = [(LABELS[k], {"instruction": NLI, "input": f"前提：{p}\n假设：{h}", "output": LABELS[k]})
           for p, *hyps in FACTS for k, h in enumerate(hyps)]
    flipped = set(rng.sample(range(len(nli)), FLIPS))
    for i, (label, rec) in enumerate(nli):
        if i in flipped:
            planted.append(("label_flip", {**rec, "output": LABELS[(LABELS.index(label) + 1) % 3]}))
        else:
            clean.append(rec)
    order = clean + [rec for _, rec in planted]
    kinds_of = [None] * len(clean) + [kind for kind, _ in planted]
    shuffled = rng.sample(range(len(order)), len(order))
    path.write_text("".join(json.dumps(order[i], ensure_ascii=False) + "\n" for i in shuffled), encoding="utf-8")
    return {n: kinds_of[i] for n, i in enumerate(shuffled, 1) if kinds_of[i] is not None}


def _passes(model_name: str, data: Path, max_length: int, cache: Path | None, times: dict[str, float | str],
            label: str, *, bare: bool, entropy: bool):
    """(tokenizer, items, signals, bare signals) of one model, each pass from the cache when it holds it (the
    model is then not even loaded); `times` gets each pass's wall seconds, or "cached"."""
    opts = ScoreOptions(data=[str(data)], model=model_name, out=data.with_suffix(".unused"),
                        mode="ifd" if bare else "divergence")
    tokenizer = scoring_tokenizer(opts)
    items = encode_records(tokenizer, read_records([str(data)]), max_length, with_bare=bare)
    loaded: list = []

    def run(name: str, samples: list, with_entropy: bool) -> Signals:
        started = time.time()
        if not loaded:
            loaded.extend(scoring_model(opts, torch.device("cuda" if torch.cuda.is_available() else "cpu")))
        out = score_samples(loaded[0], samples, tokenizer.pad_token_id, opts.batch_size, with_entropy, loaded[1])
        times[name] = round(time.time() - started, 1)
        return out

    key = {"max_length": max_length}
    times[label] = times[label + "_bare"] = "cached"
    signals = cached(cache, cache_key(model_name, data, **key, answers=True, entropy=entropy),
                     lambda: run(label, [it.sample() for it in items], entropy))
    bare_signals = cached(cache, cache_key(model_name, data, **key, answers=False, entropy=False),
                          lambda: run(label + "_bare", [it.bare for it in items if it.bare], False)) if bare else {}
    if not bare:
        del times[label + "_bare"]
    return tokenizer, items, signals, bare_signals


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:smollm2-135m")
    ap.add_argument("--tuned", action="append", default=[],
                    help="a model tuned on the domain (a run's final/): tuned_gain; repeat for several "
                         "(tuned_gain@1, @2, ... in the order given)")
    ap.add_argument("--out-dir", type=Path, default=Path("score-planted"))
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--no-cache", action="store_true",
                    help="recompute every pass (by default each is kept in OUT_DIR/signals/ and reused)")
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cache = None if args.no_cache else args.out_dir / "signals"
    data = args.out_dir / "planted.jsonl"
    kinds = write_planted(data)
    started = time.time()
    times: dict[str, float | str] = {}
    tokenizer, items, signals, bare = _passes(args.model, data, args.max_length, cache, times, "base",
                                              bare=True, entropy=True)
    special = frozenset(tokenizer.all_special_ids)
    by_mode = {mode: rank_rows([build_row(it, signals.get(it.index), bare.get(it.index), mode,
                                          [""] * len(it.input_ids), special) for it in items]) for mode in MODES}
    for n, tuned_model in enumerate(args.tuned, 1):
        name = "tuned_gain" if len(args.tuned) == 1 else f"tuned_gain@{n}"
        _, _, tuned, _ = _passes(tuned_model, data, args.max_length, cache, times, name, bare=False, entropy=False)
        by_mode[name] = rank_rows([tuned_gain_row(it, signals, tuned, special) for it in items])
    took = time.time() - started
    n = len(items)
    result: dict = {"model": args.model, "tuned": args.tuned, "records": n, "planted": len(kinds),
                    "wall_s": round(took, 1), "pass_s": times, "recall": {}}
    ranks = {mode: {int(r["source"].rsplit(":", 1)[1]): i + 1 for i, r in enumerate(rows)}
             for mode, rows in by_mode.items()}
    ifd_rows = by_line(by_mode["ifd"])
    ranks["mean_loss"] = _order(ranks["ifd"], lambda line: -(ifd_rows[line]["mean_loss"] or 0.0))
    ranks[FUSED] = _order(ranks["ifd"], lambda line: min(ranks["ifd"][line], ranks["filtered_rank"][line]))
    for mode, rank in ranks.items():
        result["recall"][mode] = _recall(rank, kinds, n)
    for mode, per_kind in result["recall"].items():
        print(f"{mode:<30} " + "  ".join(f"{k} {v['worst_5%']:.2f}/{v['worst_10%']:.2f}" for k, v in per_kind.items()),
              file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))
    return result


def tuned_gain_row(item, base: Signals, tuned: Signals, special: frozenset[int]) -> dict:
    """The record's row ranked by mean answer loss under the tuned model / under the base (structural tokens left
    out of both): the records the tuning helped least first."""
    row = build_row(item, base.get(item.index), None, "divergence", [""] * len(item.input_ids), special)
    after = build_row(item, tuned.get(item.index), None, "divergence", [""] * len(item.input_ids), special)
    before, now = row["mean_loss"] or 0.0, after["mean_loss"] or 0.0
    return {**row, "score": now / before if before else 1.0}


def by_line(rows: list[dict]) -> dict[int, dict]:
    return {int(r["source"].rsplit(":", 1)[1]): r for r in rows}


def _order(lines: dict[int, int], key) -> dict[int, int]:
    """Ranks (1 = worst) of the lines sorted by key, ties by line."""
    return {line: i + 1 for i, line in enumerate(sorted(lines, key=lambda line: (key(line), line)))}


def _recall(rank: dict[int, int], kinds: dict[int, str], n: int) -> dict[str, dict[str, float]]:
    """Per kind (and all together): the share of its planted lines ranked in the worst 5% and 10% of n."""
    out = {}
    for kind in (*KINDS, "label_flip", "all"):
        lines = [line for line, k in kinds.items() if kind in ("all", k)]
        out[kind] = {f"worst_{pct}%": round(sum(rank[line] <= n * pct / 100 for line in lines) / len(lines), 3)
                     for pct in (5, 10)}
    return out


if __name__ == "__main__":
    main()
