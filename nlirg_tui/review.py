"""Exporting flagged samples to a review JSONL: where each sample lives (file and line) and which tokens
the model choked on, so the data can be fixed and the run relaunched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REVIEW_FILE = "review.jsonl"
ZEROED = 3


def review_record(sample: dict[str, Any]) -> dict[str, Any]:
    tokens = sample.get("tokens") or []
    losses = sample.get("losses") or []
    zones = sample.get("zones") or []
    zeroed = [{"index": i, "token": tokens[i], "loss": losses[i]}
              for i in range(min(len(tokens), len(zones))) if zones[i] == ZEROED]
    return {
        "source": sample.get("source"), "line": sample.get("line"), "sample_id": sample.get("sample_id"),
        "step": sample.get("step"), "mean_loss": sample.get("mean_loss"), "max_loss": sample.get("max_loss"),
        "zeroed_tokens": sample.get("zeroed_tokens"), "target_tokens": sample.get("target_tokens"),
        "zeroed": zeroed, "text": "".join(tokens),
    }


def export_review(run_dir: Path, samples: list[dict[str, Any]]) -> Path:
    """Write the samples (one JSON object a line) to `run_dir/review.jsonl`, replacing an earlier export."""
    path = Path(run_dir) / REVIEW_FILE
    with path.open("w", encoding="utf-8") as fh:
        for sample in samples:
            fh.write(json.dumps(review_record(sample), ensure_ascii=False) + "\n")
    return path
