"""The score file's ranking and summary: rows with quality, sorted worst first (written from disk by
`spool.RowSpool`); the summary beside the file (`OUT.summary.json`) and on the terminal (records per quality
band, flags, the worst records)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import IO, Any

from trainer_core.live.rundir import write_json_atomic
from trainer_core.score.quality import band_counts, qualities


def summary_path(out: Path) -> Path:
    """`scores.jsonl` -> `scores.summary.json`."""
    return out.with_name(f"{out.stem}.summary.json")


def rank_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add quality, then sort worst first: highest raw score first; among equal scores the higher mean answer
    loss first (the model finds the answer less likely), then read order.

    Quality is computed from each row's own score before sorting and travels inside the row, so a score can
    never be paired with another record (the reference zipped sorted records with unsorted scores).
    """
    for row, q in zip(rows, qualities([r["score"] for r in rows]), strict=True):
        row["quality"] = round(q, 4)
    return sorted(rows, key=lambda r: rank_key(r["score"], r["mean_loss"], r["index"]))


def tied_records(rows: list[dict[str, Any]]) -> int:
    """Records whose raw score another record has too (the summary reports them: their order is the tie-break's)."""
    return tied_scores([r["score"] for r in rows])


def tied_scores(scores: list[float]) -> int:
    counts = Counter(scores)
    return sum(n for n in counts.values() if n > 1)


def rank_key(score: float, mean_loss: float | None, index: int) -> tuple[float, float, int]:
    """Worst first: highest raw score; among equal scores the higher mean answer loss, then read order."""
    return -score, -(mean_loss or 0.0), index


def make_summary(rows: list[dict[str, Any]], written: int, meta: dict[str, Any]) -> dict[str, Any]:
    flags = Counter(flag for row in rows for flag in row["flags"])
    counts = {"records": len(rows), "answer_tokens": sum(r["answer_tokens"] for r in rows),
              "tied": tied_records(rows), "bands": band_counts([r["quality"] for r in rows]), "flags": flags}
    return summary_of(counts, written, meta)


def summary_of(counts: dict[str, Any], written: int, meta: dict[str, Any]) -> dict[str, Any]:
    """The summary from the counts (`records`, `answer_tokens`, `tied`, `bands`, `flags` as a Counter): what
    `make_summary` counts from rows and `spool.RowSpool` keeps while it streams."""
    flags = counts["flags"]
    return {**meta, "records": counts["records"], "written": written, "answer_tokens": counts["answer_tokens"],
            "truncated": flags.get("truncated", 0), "tied": counts["tied"], "bands": counts["bands"],
            "flags": dict(sorted(flags.items()))}


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    write_json_atomic(summary_path(out), summary)


def print_summary(summary: dict[str, Any], rows: list[dict[str, Any]], stream: IO[str], worst: int = 5) -> None:
    bands = "  ".join(f"{band}: {n}" for band, n in summary["bands"].items())
    print(f"scored {summary['records']} records ({summary['answer_tokens']:,} answer tokens) with "
          f"{summary['mode']} in {summary['wall_s']:.1f}s, {summary['tokens_per_s']:,.0f} tokens/s", file=stream)
    print(f"quality bands: {bands}", file=stream)
    if summary.get("tied"):
        print(f"tied: {summary['tied']} records share their score with another (ordered by mean answer loss)",
              file=stream)
    if summary["flags"]:
        print("flags: " + "  ".join(f"{k}: {v}" for k, v in summary["flags"].items()), file=stream)
    for row in rows[:worst]:
        span = row["spans"][0]["text"].strip()[:40] if row["spans"] else ""
        print(f"  {row['quality']:.3f}  {row['source']}  {','.join(row['flags']) or '-'}"
              + (f"  «{span}»" if span else ""), file=stream)
    print(f"wrote {summary['written']} rows to {summary['out']}", file=stream)
