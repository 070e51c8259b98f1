"""A deterministic finished run (events.jsonl, config.yaml, trainer.json) for snapshot tests: fixed numbers,
no clocks, no paths of this machine, the same field shapes as a real `step` / `flagged` event."""

from __future__ import annotations

import json
import math
from pathlib import Path

from trainer_core.config import build_config, save_config

STEPS = 60
CONFIG = ["model.path=builtin:tiny", "data.train=builtin:demo", "training.max_steps=60", "training.batch_size=4",
          "output.name=fixture"]


def _step_event(seq: int, step: int) -> dict:
    loss = 2.0 + 4.0 * math.exp(-step / 15) + 0.1 * math.sin(step)
    counts = [10 + step, 60 - step // 2, 25 - step // 4, 3 if step % 7 == 0 else 0]
    hist = [0] * 41
    for i, n in zip((1, 6, 18, 31), counts, strict=True):
        hist[i] += n
        hist[i + 1] += n // 2
    mem = {"rss": 400_000_000 + step * 1_000_000, "peak": 400_000_000 + step * 1_000_000}
    total = [sum(c) for c in zip(*[[10 + s, 60 - s // 2, 25 - s // 4, 3 if s % 7 == 0 else 0]
                                   for s in range(1, step + 1)], strict=True)]
    return {"v": 1, "type": "step", "seq": seq, "ts": 0.0, "step": step, "total_steps": STEPS,
            "epoch": round(step / 30, 4), "samples_done": 4 * step, "loss": loss, "weighted_loss": loss * 0.4,
            "lr": 2e-4 * (1 - step / STEPS), "grad_norm": 0.5, "target_tokens": sum(counts),
            "input_tokens": 2 * sum(counts), "tokens_per_s": 1000.0 + step, "target_tokens_per_s": 500.0,
            "zone_counts": counts, "zone_counts_total": total,
            "zone_grad_share": [0.05, 0.7, 0.25, 0.0], "loss_hist": hist, "skipped_steps": 0, "memory": mem,
            "step_time_s": 0.05, "model_tflops": 0.0123, "mfu": None, "rank_memory": [mem], "world_size": 1}


def _flagged(step: int, line: int, zeroed: int) -> dict:
    words = ["The", " answer", " is", " 4", "2", ".", " ZZ", "qx", "#@", " end"]
    tokens = ["<|im_start|>", "user", "\n", "Q", "?", "<|im_end|>", "\n", "<|im_start|>", "assistant", "\n", *words]
    losses = [None] * 10 + [1.0, 2.0, 3.5, 7.0 + line % 3, 16.0, 2.0, 17.5 if zeroed > 1 else 9.0, 15.2, 8.0, 0.5]
    zones = [None if v is None else (0 if v <= 1.45 else 1 if v < 6.6 else 2 if v < 15 else 3) for v in losses]
    weights = [None if z is None else (0.0 if z == 3 else round(1 / (1 + math.exp(v - 6.2)), 6))
               for v, z in zip(losses, zones, strict=True)]
    targets = [v for v in losses if v is not None]
    return {"sample_id": line - 1, "step": step, "source": "data/train.jsonl", "line": line, "id": None,
            "mean_loss": round(sum(targets) / len(targets), 4), "max_loss": max(targets),
            "zeroed_tokens": sum(1 for z in zones if z == 3), "target_tokens": len(targets),
            "tokens": tokens, "losses": losses, "weights": weights, "zones": zones}


def fixture_events() -> list[dict]:
    events = [{"v": 1, "type": "status", "seq": 0, "ts": 0.0, "status": "running", "step": 0, "total_steps": STEPS}]
    for step in range(1, STEPS + 1):
        events.append(_step_event(len(events), step))
        if step == 5:
            events.append({"v": 1, "type": "flagged", "seq": len(events), "ts": 0.0, "step": step,
                           "samples": [_flagged(step, 12, 2), _flagged(step, 7, 1), _flagged(step, 30, 2)]})
        if step % 20 == 0:
            events.append({"v": 1, "type": "eval", "seq": len(events), "ts": 0.0, "step": step,
                           "epoch": round(step / 30, 4), "eval_loss": 3.0 + 3.0 * math.exp(-step / 20),
                           "eval_weighted_loss": 1.0, "zone_counts": [1, 2, 3, 0], "target_tokens": 6})
            events.append({"v": 1, "type": "checkpoint", "seq": len(events), "ts": 0.0, "step": step,
                           "path": f"checkpoints/step-{step}"})
        if step == 30:
            events.append({"v": 1, "type": "command", "seq": len(events), "ts": 0.0, "id": "c1", "name": "set",
                           "args": {"lr_scale": 0.5}, "applied_at_step": 30, "source": "client"})
    last = next(e for e in reversed(events) if e["type"] == "step")
    summary = {"status": "completed", "reason": "completed", "steps": STEPS, "total_steps": STEPS,
               "epochs_done": last["epoch"], "train_tokens": sum(last["zone_counts_total"]),
               "input_tokens": 2 * sum(last["zone_counts_total"]), "tokens_per_s": 1000.0,
               "final_loss": last["loss"], "final_weighted_loss": last["weighted_loss"],
               "zone_counts": last["zone_counts_total"], "skipped_steps": 0, "eval": None, "wall_s": 3.0,
               "peak_memory_bytes": last["memory"]["peak"], "world_size": 1, "weighting": "nlirg",
               "data": {"sources": [], "train_rows": 120, "eval_rows": 0}}
    events.append({"v": 1, "type": "end", "seq": len(events), "ts": 0.0, "status": "completed",
                   "reason": "completed", "summary": summary})
    return events


def write_fixture_run(root: Path, name: str = "fixture-20250101-000000") -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    save_config(build_config(None, CONFIG), run_dir / "config.yaml")
    (run_dir / "trainer.json").write_text(json.dumps({"name": "fixture", "status": "completed", "pid": None,
                                                      "started": 1.0, "ended": 2.0}))
    with (run_dir / "events.jsonl").open("w", encoding="utf-8") as fh:
        for event in fixture_events():
            fh.write(json.dumps(event) + "\n")
    return run_dir
