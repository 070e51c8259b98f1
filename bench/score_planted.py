"""Evidence for docs/score.md "Which mode finds bad records": recall of planted records per mode and kind.

    python -m bench.score_planted [--model builtin:smollm2-135m] [--out-dir score-planted] [--tuned MODEL]

The set: 200 clean records of `builtin:demo` (those `corrupted.json` does not list), 40 demo records corrupted
here in five kinds (8 each, chosen by a fixed seed from later demo records): `wrong_answer` (another record's
answer), `garbled` (each word's characters shuffled), `truncated` (the answer cut at 40%, mid-word),
`mis_templated` (an Alpaca template leaked into the answer) and `fluent_false` (every digit changed: the same
fluent answer stating other numbers), plus 30 short-label NLI records (`蕴含` / `矛盾` / `中立`) of which 6 carry
the wrong label (`label_flip`). One scoring pass (and the bare pass for ifd) ranks the records in every mode
exactly as `nlirg score --mode MODE` would; with `--tuned`, a second model's loss gives the `tuned_gain` ranking
(mean answer loss under the tuned model / under the base: the records the tuning helped least first). Recall of a
kind = its planted records in the worst 5% (10%) of all records / its planted records. The last line is JSON.
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
from trainer_core.data.files import builtin_data_path, read_records
from trainer_core.score.encode import encode_records
from trainer_core.score.modes import MODES
from trainer_core.score.options import ScoreOptions
from trainer_core.score.output import rank_rows
from trainer_core.score.report import build_row
from trainer_core.score.scoring import load_scorer, score_items

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
    """The data file; returns the kind of every planted line (1-based)."""
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


def _signals(model_name: str, data: Path, max_length: int, bare: bool):
    opts = ScoreOptions(data=[str(data)], model=model_name, out=data.with_suffix(".unused"),
                        mode="ifd" if bare else "divergence")
    tokenizer, model, dtype = load_scorer(opts, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    items = encode_records(tokenizer, read_records([str(data)]), max_length, with_bare=bare)
    signals, bare_signals = score_items(model, items, tokenizer.pad_token_id, opts, dtype)
    return tokenizer, items, signals, bare_signals


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:smollm2-135m")
    ap.add_argument("--tuned", default=None, help="a model tuned on the domain (a run's final/): tuned_gain")
    ap.add_argument("--out-dir", type=Path, default=Path("score-planted"))
    ap.add_argument("--max-length", type=int, default=256)
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    data = args.out_dir / "planted.jsonl"
    kinds = write_planted(data)
    started = time.time()
    tokenizer, items, signals, bare = _signals(args.model, data, args.max_length, True)
    special = frozenset(tokenizer.all_special_ids)
    by_mode = {mode: rank_rows([build_row(it, signals.get(it.index), bare.get(it.index), mode,
                                          [""] * len(it.input_ids), special) for it in items]) for mode in MODES}
    if args.tuned:
        _, _, tuned, _ = _signals(args.tuned, data, args.max_length, False)
        rows = [build_row(it, signals.get(it.index), None, "divergence", [""] * len(it.input_ids), special)
                for it in items]
        tuned_rows = {it.index: build_row(it, tuned.get(it.index), None, "divergence", [""] * len(it.input_ids),
                                          special) for it in items}
        for row in rows:
            base, after = row["mean_loss"] or 0.0, tuned_rows[row["index"]]["mean_loss"] or 0.0
            row["score"] = after / base if base else 1.0
        by_mode["tuned_gain"] = rank_rows(rows)
    took = time.time() - started
    n = len(items)
    result: dict = {"model": args.model, "tuned": args.tuned, "records": n, "planted": len(kinds),
                    "wall_s": round(took, 1), "recall": {}}
    for mode, rows in by_mode.items():
        rank = {int(r["source"].rsplit(":", 1)[1]): i + 1 for i, r in enumerate(rows)}
        result["recall"][mode] = _recall(rank, kinds, n)
    for mode, per_kind in result["recall"].items():
        print(f"{mode:<16} " + "  ".join(f"{k} {v['worst_5%']:.2f}/{v['worst_10%']:.2f}" for k, v in per_kind.items()),
              file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))
    return result


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
