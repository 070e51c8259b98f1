"""What the Data screen reviews: the rows of a score file (`nlirg score`) or of a run's flagged.jsonl, read
into one shape, worst first. Torch-free."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_core.config import NlirgParams
from trainer_core.live.rundir import FLAGGED_FILE, read_json

ZEROED_ZONE = 3
LOUD_LABEL = "label_error"
REVIEWABLE = "give a score file (`nlirg score --out`), a run's flagged.jsonl or a run"
SCORE_BOUNDS = NlirgParams()
"""A score file is read with no run behind it: its tokens' zones come from the trainer's default bounds."""


class ReviewFileError(ValueError):
    """The file is neither a score file nor a flagged.jsonl; the message names it and the line."""


@dataclass
class ReviewRow:
    """One record under review, with its tokens and per-token signals."""

    path: Path
    """The data file the record lives in."""
    line: int
    """1-based line (jsonl, csv) or record number (json, parquet), as in `source`."""
    id: str | None
    quality: float | None
    """Score files: quality in [0, 1], higher is better; flagged samples have none."""
    score: float | None
    """Score files: the mode's raw score; flagged samples: their mean target loss."""
    flags: list[str]
    tokens: list[str]
    losses: list[float | None]
    entropies: list[float | None] | None
    """Score files only; None for flagged samples (the trainer does not compute entropy)."""
    zones: list[int | None] = field(default_factory=list)
    """Each token's NLIRG zone (None: not an answer token): flagged samples keep the trainer's, which used the
    run's bounds; score files get the default bounds' (`SCORE_BOUNDS`)."""
    loud: list[int] = field(default_factory=list)
    """Token positions to jump between with [ and ]: zeroed tokens and label-error suspects."""
    spans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def targets(self) -> list[int]:
        return [i for i, loss in enumerate(self.losses) if loss is not None]

    @property
    def reason(self) -> str:
        """Why the row is here, for the changes log."""
        head = f"quality {self.quality:.3f}" if self.quality is not None else f"mean loss {self.score:.3f}"
        return head + (f"; flags {', '.join(self.flags)}" if self.flags else "")


@dataclass
class ReviewSet:
    path: Path
    kind: str
    """`score` or `flagged`."""
    rows: list[ReviewRow]
    summary: dict[str, Any]
    """A score file's OUT.summary.json (mode, model, data); empty for flagged samples."""


def split_source(source: str) -> tuple[Path, int]:
    path, _, line = source.rpartition(":")
    if not path or not line.isdigit():
        raise ValueError(f"'{source}' is not file:line")
    return Path(path), int(line)


def zone_of_loss(loss: float, p: NlirgParams = SCORE_BOUNDS) -> int:
    """The NLIRG zone of a token loss, as the trainer's `zone_of` counts it (docs/design.md §5)."""
    return int(loss > p.easy_max) + int(loss >= p.hard_min) + int(loss >= p.loss_deadline)


def _number(obj: dict[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"'{key}' is {value!r}, not a number")
    return value


def _score_row(obj: dict[str, Any]) -> ReviewRow:
    path, line = split_source(obj["source"])
    labels = obj.get("labels") or []
    losses = obj.get("losses") or []
    zones = [None if loss is None else zone_of_loss(loss) for loss in losses]
    loud = [i for i, zone in enumerate(zones) if zone is not None and
            (zone == ZEROED_ZONE or (i < len(labels) and labels[i] == LOUD_LABEL))]
    return ReviewRow(path, line, obj.get("id"), _number(obj, "quality"), _number(obj, "score"),
                     list(obj.get("flags") or []), list(obj.get("tokens") or []), losses, obj.get("entropies"),
                     zones, loud, list(obj.get("spans") or []))


def _flagged_row(obj: dict[str, Any]) -> tuple[int, ReviewRow]:
    """(zeroed tokens, the row): the Data screen lists the most zeroed first."""
    zones = list(obj.get("zones") or [])
    zeroed = int(_number(obj, "zeroed_tokens") or 0)
    flags = ([f"zeroed×{zeroed}"] if zeroed else []) + (["high_loss"] if not zeroed else [])
    line = obj["line"]
    if isinstance(line, bool) or not isinstance(line, int):
        raise ValueError(f"'line' is {line!r}, not a line number")
    return zeroed, ReviewRow(Path(obj["source"]), line, obj.get("id"), None, _number(obj, "mean_loss"), flags,
                             list(obj.get("tokens") or []), list(obj.get("losses") or []), None, zones,
                             [i for i, z in enumerate(zones) if z == ZEROED_ZONE])


def _row_of_line(path: Path, n: int, make: Callable[[dict[str, Any]], Any], obj: dict[str, Any]) -> Any:
    """`make(obj)`, or a ReviewFileError naming the file and line of a row the Data screen cannot show."""
    try:
        return make(obj)
    except (ValueError, TypeError, KeyError) as exc:  # from the row's content: a field missing or of the wrong kind
        why = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ReviewFileError(f"{path}:{n}: not a row `nlirg score` or the trainer writes ({why}); review the file "
                              "they wrote, or fix or remove the line") from None


def _read_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ReviewFileError(f"{path}:{n}: not UTF-8 text; {REVIEWABLE}") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReviewFileError(f"{path}:{n}: not valid JSON ({exc.msg}); {REVIEWABLE}") from None
            if not isinstance(obj, dict) or not obj.get("source"):
                raise ReviewFileError(f"{path}:{n}: not a score or flagged row (no 'source')")
            out.append((n, obj))
    return out


def load_review(path: str | Path) -> ReviewSet:
    """A score file (rows keep their worst-first order) or a flagged.jsonl (the latest sighting of each sample,
    most zeroed tokens first, then highest mean loss)."""
    path = Path(path)
    if path.is_dir():
        path = path / FLAGGED_FILE
    try:
        lines = _read_lines(path)
    except OSError as exc:
        raise ReviewFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if lines and "quality" in lines[0][1]:
        rows = [_row_of_line(path, n, _score_row, obj) for n, obj in lines]
        summary = read_json(path.with_name(f"{path.stem}.summary.json")) or {}
        return ReviewSet(path, "score", rows, summary)
    latest: dict[tuple[Path, int], tuple[int, ReviewRow]] = {}
    for n, obj in lines:
        if "line" not in obj:
            raise ReviewFileError(f"{path}:{n}: not a score or flagged row (no 'quality' or 'line')")
        zeroed, row = _row_of_line(path, n, _flagged_row, obj)
        latest[(row.path, row.line)] = (zeroed, row)  # the file is appended in step order: the last one is current
    ordered = sorted(latest.values(), key=lambda e: (-e[0], -(e[1].score or 0)))
    return ReviewSet(path, "flagged", [row for _, row in ordered], {})
