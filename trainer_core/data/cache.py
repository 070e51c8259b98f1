"""The on-disk cache of prepared corpora: where it lives, keys, building an entry once across processes, and
listing or clearing it. Standard library only, so `nlirg data cache` runs without torch or datasets.

An entry is a folder `<kind>-<key>/` that appears by an atomic rename, so an entry that exists is complete; a
`meta.json` inside says what it holds. The key is a hash of everything that changes the result (file
fingerprints, per-source settings, tokenizer, chat template, training type, lengths, the eval split, and
`PIPELINE_VERSION`, bumped whenever the code that writes entries changes what it writes).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_core.atomic import building_dir

PIPELINE_VERSION = 2  # 2: an SFT entry's tokens_kept and samples no longer count held-out records
META_FILE = "meta.json"
CACHE_ENV = "NLIRG_DATA_CACHE"


def cache_root(configured: str | None = None) -> Path:
    """`data.cache_dir`, else $NLIRG_DATA_CACHE, else $NLIRG_CACHE_DIR/data, else $XDG_CACHE_HOME/nlirg/data,
    else ~/.cache/nlirg/data."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("NLIRG_CACHE_DIR"):
        return Path(os.environ["NLIRG_CACHE_DIR"]).expanduser() / "data"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "nlirg" / "data"


def cache_key(kind: str, parts: Any) -> str:
    """`<kind>-<hash>` of a JSON-able description of everything the entry depends on."""
    text = json.dumps([PIPELINE_VERSION, kind, parts], sort_keys=True, ensure_ascii=False, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing); the kernel drops it if we die."""
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def lookup(root: Path, key: str) -> Path | None:
    """The finished entry, or None; a hit marks it used now (what `nlirg data cache` shows as last used)."""
    entry = root / key
    if not (entry / META_FILE).is_file():
        return None
    try:
        os.utime(entry / META_FILE)
    except OSError:  # a read-only cache still serves hits
        pass
    return entry


@contextmanager
def building(root: Path, key: str) -> Iterator[Path | None]:
    """Build entry `key` exactly once across processes (DeepSpeed ranks, A/B arms, a CLI check beside a trainer).

    Yields a fresh temporary folder to write the entry into, or None when another process finished the entry
    while this one waited for the lock. On a clean exit the folder (which must hold META_FILE) becomes the entry.
    """
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{key}.lock"):
        if lookup(root, key) is not None:
            yield None
            return
        # Under the lock, a temp folder left over is from a build that died, and an entry without meta.json
        # from an interrupted old build: building_dir starts afresh and replaces it.
        with building_dir(root / key, root / f".{key}.tmp") as tmp:
            yield tmp


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / META_FILE).write_text(json.dumps({**meta, "created": time.time()}, ensure_ascii=False, indent=1),
                                    encoding="utf-8")


def read_meta(entry: Path) -> dict[str, Any]:
    return json.loads((entry / META_FILE).read_text(encoding="utf-8"))


@dataclass
class CacheEntry:
    """One entry as `nlirg data cache` lists it."""

    name: str
    size_bytes: int
    created: float
    last_used: float
    summary: str


def list_entries(root: Path) -> list[CacheEntry]:
    """Every finished entry, most recently used first."""
    out = []
    for entry in sorted(root.glob("*")) if root.is_dir() else []:
        if not (entry / META_FILE).is_file():
            continue
        meta = read_meta(entry)
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        out.append(CacheEntry(entry.name, size, meta.get("created", 0.0), (entry / META_FILE).stat().st_mtime,
                              meta.get("summary", "")))
    return sorted(out, key=lambda e: -e.last_used)


def clear(root: Path, names: list[str] | None = None) -> list[CacheEntry]:
    """Remove the named entries (every entry when `names` is empty or None); return what was removed."""
    entries = list_entries(root)
    if names:
        unknown = sorted(set(names) - {e.name for e in entries})
        if unknown:
            raise KeyError(f"no cache entry {', '.join(unknown)} under {root}")
        entries = [e for e in entries if e.name in names]
    for entry in entries:
        with file_lock(root / f".{entry.name}.lock"):  # never under a process that is reading or building it
            shutil.rmtree(root / entry.name, ignore_errors=True)
        (root / f".{entry.name}.lock").unlink(missing_ok=True)
    return entries
