"""`w` on the Data screen: a cleaned copy of each reviewed data file, NAME.clean.EXT beside the original, where
untouched records are byte-identical, dropped ones are gone and edited ones replaced; and NAME.changes.jsonl, a
log of what changed and why. Torch-free; both files are written atomically."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nlirg_tui.overlay import Decision
from nlirg_tui.raw_records import RawFile, read_raw, render_record
from nlirg_tui.review_rows import split_source
from trainer_core.atomic import atomic_writer


class CleanError(ValueError):
    """The data no longer matches the review (a record is gone); the message names file and line."""


@dataclass
class CleanResult:
    source: Path
    clean: Path
    changes: Path
    dropped: int
    edited: int


def _package_data_dir() -> Path:
    return Path(str(resources.files("trainer_core") / "assets"))


def clean_paths(source: Path, fallback_dir: Path) -> tuple[Path, Path]:
    """NAME.clean.EXT (parquet: .jsonl) and NAME.changes.jsonl beside the original, or in `fallback_dir` when the
    original is bundled data (never written into the package) or its folder is read-only."""
    folder = source.parent
    if _package_data_dir() in source.resolve().parents or not os.access(folder, os.W_OK):
        folder = fallback_dir
    ext = ".jsonl" if source.suffix.lower() == ".parquet" else source.suffix
    return folder / f"{source.stem}.clean{ext}", folder / f"{source.stem}.changes.jsonl"


def _change_entry(raw: RawFile, line: int, decision: Decision) -> dict:
    entry = {"source": f"{raw.path}:{line}", "action": decision.action, "reason": decision.reason,
             "note": decision.note, "before": raw.objects[line],
             "after": decision.record if decision.action == "edit" else None,
             "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    record_id = raw.objects[line].get("id") if isinstance(raw.objects[line], dict) else None
    return {"id": record_id, **entry} if record_id is not None else entry


def clean_file(source: Path, decisions: dict[int, Decision], fallback_dir: Path) -> CleanResult:
    raw = read_raw(source)
    changes: dict[int, str | None] = {}
    for line, decision in sorted(decisions.items()):
        if line not in raw.objects:
            raise CleanError(f"{source}:{line}: no such record any more; the data changed since it was scored")
        changes[line] = render_record(raw, decision.record or {}, raw.raw(line)) if decision.action == "edit" \
            else None
    if all(changes.get(line, "") is None for line in raw.objects):
        raise CleanError(f"{source}: every record ({len(raw.objects)}) is dropped, so the cleaned copy would hold none "
                         "and training on it would fail; keep at least one, or leave the file out of data.train")
    clean, log = clean_paths(source, fallback_dir)
    with atomic_writer(clean) as fh:
        fh.write(raw.rebuild(changes))
    with atomic_writer(log) as fh:
        for line, decision in sorted(decisions.items()):
            fh.write(json.dumps(_change_entry(raw, line, decision), ensure_ascii=False) + "\n")
    dropped = sum(1 for d in decisions.values() if d.action == "drop")
    return CleanResult(source, clean, log, dropped, len(decisions) - dropped)


def write_cleaned(changes: dict[str, Decision], fallback_dir: Path) -> list[CleanResult]:
    """One cleaned file per data file that has a drop or an edit."""
    by_file: dict[Path, dict[int, Decision]] = {}
    for source, decision in changes.items():
        path, line = split_source(source)
        by_file.setdefault(path, {})[line] = decision
    return [clean_file(path, decisions, fallback_dir) for path, decisions in sorted(by_file.items())]
