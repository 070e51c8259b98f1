"""Normalised records of one data source, read once through `datasets` and cached on disk (torch-free).

This is the first of the two cached stages of docs/design.md §11: every file of a source is read into Arrow, every
record is normalised by `records.normalise` in `Dataset.map(batched=True, num_proc=N)` workers, and the result
(`messages` or `text`, with the `file` index, the `line` or record number and the record's `id`) is saved under a
key of the files' fingerprints and the source's settings. `nlirg train` runs this before it creates the run
directory, so a malformed record is one line naming its file and line, exit code 2, and no run directory; the
trainer then finds the entry already built.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer_core.config.sources import SourceSpec
from trainer_core.data.cache import building, cache_key, lookup, read_meta, write_meta
from trainer_core.data.exclude import ExcludeList
from trainer_core.data.files import SourceFile, expand_source, load_raw, row_objects
from trainer_core.data.records import DataError, apply_columns, file_format, normalise, record_id

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset

log = logging.getLogger("trainer_core")

MIN_RECORDS_PER_PROC = 2000
"""Below this many records per worker, starting worker processes costs more than it saves."""
MAX_PROCS = 16

Report = Callable[[str, int, int, float], None]
"""progress(phase, done, total, seconds): called as a stage moves on; `seconds` since the stage began."""


def num_procs(configured: int, records: int) -> int:
    """`data.num_proc` (0 = one per core, capped), and never more workers than the records keep busy."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wanted = configured or min(cores, MAX_PROCS)
    return max(1, min(wanted, records // MIN_RECORDS_PER_PROC))


def map_procs(procs: int) -> int | None:
    """`Dataset.map`'s num_proc: None for one process (num_proc=1 would still start a worker pool)."""
    return procs if procs > 1 else None


def record_features():
    from datasets import Features, List, Value

    return Features({"messages": List({"role": Value("string"), "content": Value("string")}),
                     "text": Value("string"), "file": Value("int32"), "line": Value("int64"), "id": Value("string")})


@dataclass
class SourceRecords:
    """One source's normalised records, memory-mapped from the cache."""

    spec: SourceSpec
    key: str
    """Cache key: the next stage's key is built from it."""
    files: list[str]
    """File names; the records' `file` column indexes this list."""
    dataset: Dataset
    excluded: int = 0
    """Records that data.exclude left out."""
    exclude_matched: frozenset[int] = frozenset()
    """File lines of the data.exclude source entries that named a record of this source."""


def source_key(spec: SourceSpec, files: list[SourceFile], exclude: ExcludeList | None = None) -> str:
    parts: dict[str, Any] = {"files": [f.fingerprint() for f in files], "settings": spec.settings()}
    if exclude is not None:
        parts["exclude"] = exclude.fingerprint()
    return cache_key("records", parts)


def source_records(spec: SourceSpec, root: Path, num_proc: int = 0, progress: Report | None = None,
                   exclude: ExcludeList | None = None) -> SourceRecords:
    """The normalised records of `spec`, built (once, across processes) if the cache has none for its files."""
    from datasets import load_from_disk

    files = expand_source(spec)
    key = source_key(spec, files, exclude)
    if lookup(root, key) is None:
        with building(root, key) as tmp:
            if tmp is not None:
                _build(spec, files, tmp, num_proc, progress, exclude)
    entry = lookup(root, key)
    assert entry is not None, key
    meta = read_meta(entry)
    return SourceRecords(spec, key, meta["files"], load_from_disk(str(entry / "records")), meta.get("excluded", 0),
                         frozenset(meta.get("exclude_matched", [])))


def _build(spec: SourceSpec, files: list[SourceFile], folder: Path, num_proc: int, progress: Report | None,
           exclude: ExcludeList | None = None) -> None:
    from datasets import concatenate_datasets

    work = folder / "work"
    started = time.time()
    parts = []
    read = 0
    matched: set[int] = set()
    for index, file in enumerate(files):
        raw, numbers = load_raw(file, work)
        read += len(raw)
        parts.append(_normalised(raw, numbers, spec, file, index, work, num_proc, exclude))
        if exclude is not None:
            matched |= exclude.sources_in(file.name, numbers)
        if progress is not None:
            progress("reading", index + 1, len(files), time.time() - started)
    records = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    n = len(records)
    records.save_to_disk(str(folder / "records"))
    del records, parts
    shutil.rmtree(work, ignore_errors=True)
    write_meta(folder, {"kind": "records", "files": [f.name for f in files], "records": n,
                        "fingerprints": [f.fingerprint() for f in files],  # `nlirg data cache --prune` checks them
                        "excluded": read - n, "exclude_matched": sorted(matched),
                        "settings": spec.settings(), "summary": f"{n:,} records from {_describe(files)}"})
    log.info("data: read and normalised %s records of %s in %.1f s", f"{n:,}", spec.path, time.time() - started)


def _describe(files: list[SourceFile]) -> str:
    return files[0].name + (f" and {len(files) - 1} more file(s)" if len(files) > 1 else "")


def _normalised(raw: Dataset, numbers: np.ndarray, spec: SourceSpec, file: SourceFile, index: int, work: Path,
                num_proc: int, exclude: ExcludeList | None = None) -> Dataset:
    if len(raw) == 0:
        raise DataError(f"{file.name}: holds no records")
    first = apply_columns(row_objects(raw[:1])[0], spec.columns)
    fmt = file_format(spec.format, first, f"{file.name}:{numbers[0]}")
    work.mkdir(parents=True, exist_ok=True)
    return raw.map(
        normalise_batch, batched=True, batch_size=1000, with_indices=True,
        num_proc=map_procs(num_procs(num_proc, len(raw))),
        remove_columns=raw.column_names, features=record_features(),
        cache_file_name=str(work / f"normalised-{index}.arrow"), new_fingerprint=f"normalised-{index}",
        fn_kwargs={"fmt": fmt, "spec": spec, "name": file.name, "file_index": index, "numbers": numbers,
                   "exclude": exclude},
        desc=None,
    )


def normalise_batch(batch: dict[str, list[Any]], indices: list[int], *, fmt: str, spec: SourceSpec, name: str,
                    file_index: int, numbers: np.ndarray, exclude: ExcludeList | None = None,
                    ) -> dict[str, list[Any]]:
    """`Dataset.map(batched=True)` function: raw rows -> normalised records; a bad one raises naming its line.
    Records that data.exclude names are left out before they are normalised."""
    out: dict[str, list[Any]] = {"messages": [], "text": [], "file": [], "line": [], "id": []}
    for raw, i in zip(row_objects(batch), indices, strict=True):
        obj = apply_columns(raw, spec.columns)
        if isinstance(obj, dict):  # a field absent from this row reads as null in the Arrow table
            obj = {k: v for k, v in obj.items() if v is not None}
        line = int(numbers[i])
        if exclude is not None and exclude(name, line, obj):
            continue
        messages, text = normalise(obj, fmt, f"{name}:{line}", spec.system_prompt, spec.text_field)
        out["messages"].append(messages)
        out["text"].append(text)
        out["file"].append(file_index)
        out["line"].append(line)
        out["id"].append(record_id(obj))
    return out


def read_sources(specs: list[SourceSpec], root: Path, num_proc: int = 0, progress: Report | None = None,
                 exclude: ExcludeList | None = None) -> list[SourceRecords]:
    """Every source's records (the CLI's check before a run directory is created, and the trainer's first stage)."""
    return [source_records(spec, root, num_proc, progress, exclude) for spec in specs]
