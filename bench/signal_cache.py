"""A scoring pass's signals kept on disk for the benches, so a second run (another `--tuned` model, another way
to rank) reuses the passes it already made instead of repeating them; the measured numbers are the same.

An entry is keyed by everything the signals depend on: the model as given, and for a model folder its resolved
path and the newest mtime of its files (a retrained run is a new entry), the data file's content digest, the
longest sample and which signals the pass took. Delete the folder to recompute.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from trainer_core.score.forward import RowSignals

Signals = dict[int, RowSignals]


def cache_key(model: str, data: Path, **settings: object) -> dict[str, object]:
    key: dict[str, object] = {"model": model, "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
                              **settings}
    folder = Path(model).expanduser()
    if folder.is_dir():
        key["resolved"] = str(folder.resolve())
        key["mtime_ns"] = max((p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()), default=0)
    return key


def cached(folder: Path | None, key: dict[str, object], compute: Callable[[], Signals]) -> Signals:
    """The signals under `key` from `folder` (None: no cache), computing and storing them when absent."""
    if folder is None:
        return compute()
    path = folder / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16] + ".json")
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        return {int(k): RowSignals(*v) for k, v in stored["signals"].items()}
    signals = compute()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "signals": {k: [s.positions, s.losses, s.entropies]
                                                       for k, s in signals.items()}}), encoding="utf-8")
    tmp.replace(path)
    return signals
