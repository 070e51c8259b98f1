"""`data.exclude`: leave records out of a run without rewriting the data.

A small filter kept apart from the reading: the first data stage (`corpus.normalise_batch`) asks it about every
raw record by file, line and id before normalising it, so a record that would not normalise (an empty answer, a
field of the wrong type) can be excluded too; a line that is not JSON at all still has to be fixed. The exclude
list is part of the stage's cache key. The exclude file lists one record per line:

- `path/to/file.jsonl:17` — a `source` (file and 1-based line or record number, as score files and the
  Inspector write them); a relative path is tried against the current folder and the exclude file's folder;
- `rec-0042` — a record `id` (a plain line is matched against ids as well as sources);
- `{"source": "file:17", ...}` or `{"id": "rec-0042", ...}` — a JSON object, so the rows of a score file
  (`jq -c 'select(.quality < 0.2)' scores.jsonl > drop.jsonl`) or a review export work as they are.

Blank lines and lines starting with `#` are ignored. Torch-free.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from trainer_core.data.records import DataError, record_id

_SOURCE = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")


@lru_cache(maxsize=256)
def _resolved(source: str) -> str:
    return str(Path(source).resolve())


@dataclass
class ExcludeList:
    """The entries of one exclude file: sources as (resolved path, line) and ids, each with its file line."""

    path: Path
    sources: dict[tuple[str, int], int] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def add_source(self, text: str, n: int) -> bool:
        match = _SOURCE.match(text)
        if match is None:
            return False
        rel = Path(match["path"]).expanduser()
        bases = [rel] if rel.is_absolute() else [Path.cwd() / rel, self.path.parent / rel]
        for candidate in bases:
            self.sources[(str(candidate.resolve()), int(match["line"]))] = n
        return True

    def __call__(self, source: str, line: int, obj: Any) -> bool:
        """True when an entry names this record (by its file and line, or by its id)."""
        if (_resolved(source), line) in self.sources:
            return True
        rid = record_id(obj)
        return rid is not None and rid in self.ids

    def fingerprint(self) -> str:
        """Everything that decides what is left out, for cache keys."""
        return json.dumps([sorted(self.sources), sorted(self.ids)])

    def sources_in(self, source: str, lines: Any) -> set[int]:
        """File lines of the source entries that name one of `lines` of `source`."""
        resolved, present = _resolved(source), {int(n) for n in lines}
        return {n for (path, line), n in self.sources.items() if path == resolved and line in present}


@dataclass
class Exclusion:
    """What data.exclude did to a run's data: for the log and summary.json."""

    path: str
    excluded: int
    """Records left out."""
    unmatched: int
    """Source entries (file:line) that named no record of the data: a typo, or data that changed."""

    def message(self) -> str:
        text = f"data.exclude: excluded {self.excluded} records"
        return text + (f"; {self.unmatched} file:line entries of {self.path} named no record" if self.unmatched
                       else "")


def exclusion(exclude: ExcludeList, excluded: int, matched: set[int]) -> Exclusion:
    """Totals over every source read: `matched` are the file lines of the source entries that named a record."""
    return Exclusion(str(exclude.path), excluded, len(set(exclude.sources.values()) - matched))


def read_exclude(path: str | Path) -> ExcludeList:
    path = Path(path).expanduser()
    out = ExcludeList(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"data.exclude: cannot read '{path}': {exc.strerror or exc}") from None
    for n, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("{"):
            _add_object(out, text, n)
        else:  # `name:12` may be a source or an id that contains a colon: it matches either
            out.add_source(text, n)
            out.ids[text] = n
    return out


def _add_object(out: ExcludeList, text: str, n: int) -> None:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{out.path}:{n}: not valid JSON ({exc.msg})") from None
    source, rid = obj.get("source"), obj.get("id")
    if isinstance(source, str) and isinstance(obj.get("line"), int):  # flagged.jsonl / review.jsonl rows
        source = f"{source}:{obj['line']}"
    if not (isinstance(source, str) and out.add_source(source, n)) and rid is None:
        raise DataError(f"{out.path}:{n}: give a 'source' (file:line) or an 'id'")
    if rid is not None:
        out.ids[str(rid)] = n
