"""Evidence for docs/score.md: where 10 planted corrupt answers rank among 200 clean demo records, in each mode.

    python -m bench.score_evidence [--model builtin:smollm2-135m] [--out-dir score-evidence]

The clean records are the first 200 of `builtin:demo` that `corrupted.json` does not list (their exact lines);
the 10 planted ones, written for this benchmark, put corrupt answers (5 garbled, 5 fluent but wrong) under
questions taken from later demo records, so no clean record shares their question. They are spread through the
file. One scoring pass gives every token's loss and entropy (and, for ifd, the answers without their prompt);
each mode then ranks the same 210 records exactly as `nlirg score --mode MODE` would (the same functions).
The data file is written to --out-dir, so `nlirg score OUT_DIR/planted-demo.jsonl --model M --out s.jsonl
--mode MODE` reproduces any column. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from trainer_core.data.files import builtin_data_path, read_records
from trainer_core.score.encode import encode_records
from trainer_core.score.modes import MODES
from trainer_core.score.options import ScoreOptions
from trainer_core.score.output import rank_rows
from trainer_core.score.report import build_row
from trainer_core.score.scoring import load_scorer, score_items

CLEAN = 200
GARBLED = [
    ("How do I factory reset the smart plug?",
     "Pr3ss anD h0ld th3 ~~ bttn 10s kjdf qwp zzx!! lnk lnk 8d7f6 ==== reset?? ok ok ok ok"),
    ("The camera isn't recording to the SD card.",
     "Ã‰cran: vÃ©rifiez la carte â€” Â« stockage Â» puis rÃ©essayez lâ€™enregistrement, Ã§a marche."),
    ("忘记密码了怎么办？", "码密记忘击点面页录登在，件邮收查箱邮册注用使后然，链置重开打内钟分三十"),
    ("My lock beeps three times and doesn't lock.",
     "6c 6f 63 6b 20 62 65 65 70 73 20 74 68 72 65 65 20 74 69 6d 65 73 20 0a 0d ff fe 00 00 13"),
    ("请问插座支持 5 GHz Wi-Fi 吗？",
     "支持支持支持 GHz GHz GHz 5 5 5 5 插座插座 Wi Wi Wi-Fi Fi Fi 吗吗吗吗 的的的的的"),
]
FLUENT_WRONG = [
    ("When is your support team available?",
     "Our support team is available on weekdays only, from 10:00 to 14:00, and we do not answer messages at "
     "weekends or on public holidays."),
    ("Do I need a referral to see a specialist?",
     "No referral is ever needed: Greenway Clinic books every specialist directly, and insurance plans never ask "
     "for one."),
    ("自动上锁的时间能改吗？",
     "不能修改。智能门锁 L1 的自动上锁时间固定为 10 秒，这是出厂设置，任何情况下都无法调整。"),
    ("My thermostat is showing the wrong room temperature.",
     "To return a gift, bring the original receipt to any Lumen Home store within 90 days and we will refund "
     "the full price in cash."),
    ("脚崴了，肿了一块。", "红烧肉的做法：五花肉切块焯水，加冰糖炒出糖色，再加生抽、老抽和八角，小火炖一个小时即可。"),
]


def write_planted(path: Path) -> dict[int, str]:
    """The 210-record file; returns the line of each planted record and its kind."""
    demo = builtin_data_path("builtin:demo")
    corrupted = {c["line"] for c in json.loads((demo.parent / "corrupted.json").read_text(encoding="utf-8"))}
    lines = demo.read_text(encoding="utf-8").splitlines(keepends=True)
    clean = [line for n, line in enumerate(lines, 1) if n not in corrupted][:CLEAN]
    planted = [("garbled", q, a) for q, a in GARBLED] + [("fluent_wrong", q, a) for q, a in FLUENT_WRONG]
    out: list[str] = []
    kinds: dict[int, str] = {}
    step = len(clean) // len(planted)
    for k, (kind, question, answer) in enumerate(sorted(planted, key=lambda p: p[1])):  # interleave the kinds
        out += clean[k * step:(k + 1) * step]
        out.append(json.dumps({"instruction": question, "input": "", "output": answer}, ensure_ascii=False) + "\n")
        kinds[len(out)] = kind
    out += clean[len(planted) * step:]
    path.write_text("".join(out), encoding="utf-8")
    return kinds


def ranks_by_mode(data: Path, model_name: str, max_length: int) -> tuple[dict[str, list[dict]], float]:
    opts = ScoreOptions(data=[str(data)], model=model_name, out=data.with_suffix(".unused"), mode="ifd")
    tokenizer, model, dtype = load_scorer(opts, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    records = read_records([str(data)])
    items = encode_records(tokenizer, records, max_length, with_bare=True)
    started = time.time()
    signals, bare = score_items(model, items, tokenizer.pad_token_id, opts, dtype)
    took = time.time() - started
    # Token texts only fill the spans' text, which ranks do not need.
    return {mode: rank_rows([build_row(it, signals.get(it.index), bare.get(it.index), mode, [""] * len(it.input_ids))
                             for it in items]) for mode in MODES}, took


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin:smollm2-135m")
    ap.add_argument("--out-dir", type=Path, default=Path("score-evidence"))
    ap.add_argument("--max-length", type=int, default=1024)
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    data = args.out_dir / "planted-demo.jsonl"
    kinds = write_planted(data)
    by_mode, took = ranks_by_mode(data, args.model, args.max_length)
    result: dict = {"model": args.model, "records": sum(1 for _ in data.open()), "planted": len(kinds),
                    "forward_s": round(took, 1), "modes": {}}
    print(f"{'mode':<16} {'in worst 10':>11} {'in worst 20':>11}  ranks of garbled / fluent-but-wrong (1 = worst)",
          file=sys.stderr)
    ranks = {mode: {int(r["source"].rsplit(":", 1)[1]): i + 1 for i, r in enumerate(rows)}
             for mode, rows in by_mode.items()}
    for mode, rank in ranks.items():
        got = {kind: sorted(rank[line] for line, k in kinds.items() if k == kind) for kind in ("garbled",
                                                                                               "fluent_wrong")}
        all_ranks = sorted(rank[line] for line in kinds)
        entry = {"worst_10": sum(r <= 10 for r in all_ranks), "worst_20": sum(r <= 20 for r in all_ranks), **got}
        result["modes"][mode] = entry
        print(f"{mode:<16} {entry['worst_10']:>11} {entry['worst_20']:>11}  {got['garbled']} / {got['fluent_wrong']}",
              file=sys.stderr)
    answers = {n: json.loads(line)["output"] for n, line in enumerate(data.open(encoding="utf-8"), 1)}
    result["planted_ranks"] = [{"line": line, "kind": kind, "answer": answers[line][:40],
                                **{mode: ranks[mode][line] for mode in MODES}} for line, kind in sorted(kinds.items())]
    print("\nrank of each planted record per mode:", file=sys.stderr)
    for item in result["planted_ranks"]:
        print(f"  {item['kind']:<13} " + " ".join(f"{item[m]:>4}" for m in MODES) + f"  {item['answer']}",
              file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()
