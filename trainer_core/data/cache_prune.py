"""Keeping the data cache small: entries no source can use any more are pruned (`nlirg data cache --prune`), and
the cache is held under `data.cache_max_gb` by removing the least recently used entries (docs/data.md).

A records entry records its files' fingerprints (path and content digest); it is unused once one of those files
is gone or holds other bytes, or when it was made before entries recorded them (its key can never be met again).
A tokens entry is unused once a records entry it was built from is gone. Standard library only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from trainer_core.data.cache import META_FILE, CacheEntry, file_lock, list_entries, read_meta
from trainer_core.data.files import SourceFile


def unused_entries(root: Path) -> list[CacheEntry]:
    """Entries that no source can hit any more (see the module doc)."""
    entries = list_entries(root)
    metas = {e.name: _meta(root / e.name) for e in entries}
    stale = {name for name, meta in metas.items() if meta.get("kind") == "records" and not _records_current(meta)}
    for name, meta in metas.items():
        if meta.get("kind") == "tokens":
            used = meta.get("records_keys")
            if not isinstance(used, list) or any(k in stale or k not in metas for k in used):
                stale.add(name)
    return [e for e in entries if e.name in stale]


def prune(root: Path) -> list[CacheEntry]:
    """Remove every unused entry; return them."""
    return remove(root, unused_entries(root))


def enforce_cap(root: Path, max_bytes: int, keep: set[str]) -> list[CacheEntry]:
    """Remove the least recently used entries (never those in `keep`: this run's) until the cache holds at most
    `max_bytes`; return what was removed. `max_bytes` <= 0: no cap."""
    if max_bytes <= 0:
        return []
    entries = list_entries(root)  # most recently used first
    total = sum(e.size_bytes for e in entries)
    doomed = []
    for entry in reversed(entries):
        if total <= max_bytes:
            break
        if entry.name not in keep:
            doomed.append(entry)
            total -= entry.size_bytes
    return remove(root, doomed)


def remove(root: Path, entries: list[CacheEntry]) -> list[CacheEntry]:
    for entry in entries:
        lock = root / f".{entry.name}.lock"
        with file_lock(lock):  # never under a process that is building it
            shutil.rmtree(root / entry.name, ignore_errors=True)
        lock.unlink(missing_ok=True)
    return entries


def _meta(entry: Path) -> dict[str, Any]:
    try:
        return read_meta(entry) if (entry / META_FILE).is_file() else {}
    except (OSError, ValueError):
        return {}


def _records_current(meta: dict[str, Any]) -> bool:
    recorded = meta.get("fingerprints")
    if not isinstance(recorded, list):
        return False  # made before entries recorded their files' contents: its key is never met again
    for fingerprint in recorded:
        try:
            kind, path, split, subset = fingerprint[:4]
            current = SourceFile(kind, path, split, subset).fingerprint()
            if json.loads(json.dumps(current)) != fingerprint:  # as meta.json holds it (tuples as lists)
                return False
        except (OSError, ValueError, TypeError):
            return False  # gone, unreadable, or not a fingerprint
    return True
