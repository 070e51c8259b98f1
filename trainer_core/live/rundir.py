"""The run directory (docs/design.md §3, contract): naming, trainer.json, summary.json, atomic writes."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
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
COMPLETE_MARKER = "COMPLETE"
"""Written last into a checkpoint folder, before it is renamed into place: a folder without it is not whole."""
STATE_FILE = "trainer_state.json"
FINAL = "final"


PRIVATE_MODE = 0o700
"""A run directory's mode by default: it holds training text (flagged.jsonl, events with sample tokens)."""
SHARED_MODE = 0o750
"""With `output.shared: true`: the folder's group may read it too (files 0640)."""


def new_run_dir(root: str | Path, name: str, shared: bool = False) -> Path:
    """Create `root/<name>-<yyyymmdd-hhmmss>/` (with a suffix if that second is taken), mode 0700 (0750 shared)."""
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    mode = SHARED_MODE if shared else PRIVATE_MODE
    for n in range(1000):
        path = root / (f"{name}-{stamp}" if n == 0 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir(mode=mode)
        except FileExistsError:
            continue
        path.chmod(mode)  # mkdir's mode passes through the umask
        return path.resolve()
    raise RuntimeError(f"cannot create a run directory under {root}")


def file_mode(run_dir: str | Path) -> int:
    """The mode of a file in the run directory: the folder's own, without execute bits (0600, 0640 shared)."""
    return stat.S_IMODE(os.stat(run_dir).st_mode) & 0o666


def follow_run_dir_mode(run_dir: str | Path) -> None:
    """Set this process's umask so everything it creates in the run directory (logs, checkpoints, tb/) is no
    more open than the folder itself; the trainer calls it first thing (a run from before modes keeps 0755)."""
    os.umask(~stat.S_IMODE(os.stat(run_dir).st_mode) & 0o777)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Replace `path` by `data` as JSON, atomically (readers never see half a file)."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n")


def read_json(path: str | Path) -> dict[str, Any] | None:
    """A run file's JSON object; None when it is missing, unreadable, not UTF-8, not JSON or not an object (a
    damaged or foreign file is treated as absent, never as a traceback in `nlirg runs` or the Runs screen)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError
        return None
    return data if isinstance(data, dict) else None


def update_trainer_json(run_path: str | Path, **fields: Any) -> dict[str, Any]:
    path = Path(run_path) / TRAINER_FILE
    data = read_json(path) or {}
    data.update(fields)
    write_json_atomic(path, data)
    return data


def record_trainer_json(run_path: str | Path, **fields: Any) -> bool:
    """`update_trainer_json` for a trainer that must outlive a full disk: the old file stays whole (atomic
    rename), one error line says why, and False tells the caller it was not written."""
    try:
        update_trainer_json(run_path, **fields)
    except OSError as exc:
        if exc.errno == errno.ENOSPC and _rewrite_in_place(Path(run_path) / TRAINER_FILE, fields):
            return True
        logging.getLogger("trainer_core").error("trainer.json not updated (%s); free disk space under %s",
                                                exc.strerror or exc, Path(run_path).parent)
        return False
    return True


def _rewrite_in_place(path: Path, fields: dict[str, Any]) -> bool:
    """A full disk has no room for the temp file of an atomic write, but trainer.json's own blocks are there: a
    run that ends on a full disk still records `failed` and its error (`nlirg runs`). Not atomic: only this."""
    data = read_json(path)
    if data is None:
        return False
    data.update(fields)
    text = (json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n").encode("utf-8")
    try:
        with open(path, "r+b") as fh:
            if os.fstat(fh.fileno()).st_blocks * 512 < len(text):
                return False  # it would need a new block: the old file stays whole
            fh.write(text)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        return False
    return True


def checkpoint_dirs(run_dir: str | Path, complete: bool = True) -> list[Path]:
    """Checkpoints `step-N/`, oldest first: only complete ones unless `complete` is False (temp and aside
    folders of an interrupted save never count)."""
    base = Path(run_dir) / CHECKPOINTS
    if not base.is_dir():
        return []
    found = [p for p in base.iterdir() if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()]
    return sorted((p for p in found if not complete or is_complete(p)), key=lambda p: int(p.name[5:]))


def is_complete(ckpt: Path) -> bool:
    """A checkpoint folder whose save finished: it holds the marker written last. One written before markers
    existed counts when every file is there and no temp copy of the same step sits beside it (the signs of a
    save killed while it removed the old folder, file by file, before renaming the new one)."""
    if (ckpt / COMPLETE_MARKER).is_file():
        return True
    if ckpt.with_name(f".tmp-{ckpt.name}").exists() or not (ckpt / STATE_FILE).is_file():
        return False
    if (ckpt / "deepspeed").is_dir():
        return (ckpt / "scheduler.pt").is_file()
    files = ("scheduler.pt", "optimizer.pt", "rng.pt")
    return all((ckpt / name).is_file() for name in files) and any((ckpt / "model").glob("*.safetensors"))
