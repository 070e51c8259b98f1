"""Planted-fault data for the scoring and Data screen tests, and one real `nlirg score` run shared by them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCORE_MAX_LENGTH = 96
"""The shared score file is made with this --max-length, so the planted long answer is cut and flagged."""

PLANTED: dict[str, dict[str, Any]] = {
    "garbled": {"instruction": "What is 5 plus 5?", "input": "", "output": "zq#@ xx&& 9191 ~~ qqq zz ## ~~ 0x"},
    "empty": {"instruction": "Say nothing at all.", "input": "", "output": ""},
    "one_token": {"id": "one", "instruction": "Answer with one letter.", "input": "", "output": "A"},
    "long": {"instruction": "Describe it.", "input": "", "output": "The answer is " + "very " * 60 + "long."},
    "with_id": {"id": "rec-7", "instruction": "What is 7 plus 7?", "input": "", "output": "The answer is 14."},
}


def clean_record(i: int) -> dict[str, Any]:
    return {"instruction": f"What is {i} plus {i}?", "input": "", "output": f"The answer is {2 * i}. 答案是{2 * i}。"}


def write_planted(path: Path, clean: int = 12) -> dict[str, int]:
    """Clean records with the planted ones spread among them; returns the line of each planted record."""
    rows: list[dict[str, Any]] = [clean_record(i) for i in range(clean)]
    for k, record in enumerate(PLANTED.values()):
        rows.insert(2 + k * 3, record)
    lines = {name: next(n for n, row in enumerate(rows, 1) if row is record) for name, record in PLANTED.items()}
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return lines


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def copy_scored(data: Path, scores: Path, into: Path) -> tuple[Path, Path]:
    """A private copy of the data and its score file (sources rewritten to the copy), for tests that write."""
    into.mkdir(parents=True, exist_ok=True)
    new_data = into / data.name
    new_data.write_bytes(data.read_bytes())
    new_scores = into / scores.name
    new_scores.write_text(scores.read_text(encoding="utf-8").replace(str(data.resolve()), str(new_data.resolve())),
                          encoding="utf-8")
    summary = scores.with_name(f"{scores.stem}.summary.json")
    if summary.exists():
        text = summary.read_text(encoding="utf-8").replace(str(data), str(new_data))
        new_scores.with_name(summary.name).write_text(text, encoding="utf-8")
    return new_data, new_scores
