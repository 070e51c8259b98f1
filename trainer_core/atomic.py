"""Files and folders that appear whole or not at all: the one way trainer_core (and the TUI) replace what
a reader, a resume or a crash might catch half-written (trainer.json, summary.json, config.yaml, settings,
checkpoints, final/, the builtin model cache).

A file is written to a temp file beside it, fsynced, and renamed over the old one; a folder is built in a temp
folder beside it and renamed into place. A failure (a full disk, a kill) leaves the old version whole and
removes the temp. Stdlib only: both halves and the TUI use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace `path` by `data` (text is written as UTF-8): readers see the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not reach the disk before the data does
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temp file behind
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def building_dir(target: Path, tmp: Path | None = None) -> Iterator[Path]:
    """Yield an empty temp folder (default `.tmp-<name>` beside `target`); when the block ends without an
    exception it replaces `target` whole, otherwise it is removed and `target` is left as it was."""
    tmp = tmp or target.with_name(f".tmp-{target.name}")
    fresh_dir(tmp)
    try:
        yield tmp
        publish_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def fresh_dir(tmp: Path) -> None:
    """An empty temp folder, whatever an interrupted earlier attempt left there."""
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)


def publish_dir(tmp: Path, target: Path) -> None:
    """Put the complete folder `tmp` in the place of `target` (for steps split across processes, e.g. ranks)."""
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)
