"""The run directory (DESIGN §3, contract): naming, trainer.json, summary.json, atomic writes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from trainer_core.atomic import write_atomic

CONFIG_FILE = "config.yaml"
TRAINER_FILE = "trainer.json"
SUMMARY_FILE = "summary.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "trainer.log"
FLAGGED_FILE = "flagged.jsonl"
CHECKPOINTS = "checkpoints"
FINAL = "final"


def new_run_dir(root: str | Path, name: str) -> Path:
    """Create `root/<name>-<yyyymmdd-hhmmss>/` (with a suffix if that second is taken)."""
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = root / (f"{name}-{stamp}" if n == 0 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir()
            return path.resolve()
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run directory under {root}")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Replace `path` by `data` as JSON, atomically (readers never see half a file)."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n")


def read_json(path: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def update_trainer_json(run_path: str | Path, **fields: Any) -> dict[str, Any]:
    path = Path(run_path) / TRAINER_FILE
    data = read_json(path) or {}
    data.update(fields)
    write_json_atomic(path, data)
    return data


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp dirs of an interrupted save are ignored)."""
    base = Path(run_dir) / CHECKPOINTS
    if not base.is_dir():
        return []
    found = [p for p in base.iterdir() if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))
