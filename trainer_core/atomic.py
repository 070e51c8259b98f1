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
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace `path` by `data` (text is written as UTF-8): readers see the old file or the new one, never half."""
    with atomic_writer(path, binary=True) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextlib.contextmanager
def atomic_writer(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """`write_atomic` for a file written piece by piece (a score file, a cleaned dataset): the file appears at
    `path` only when the block ends without an error."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""})) as fh:
            _keep_mode(path, fh.fileno())
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not reach the disk before the data does
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temp file behind
        raise
    _fsync_dir(path.parent)


def _keep_mode(path: Path, fd: int) -> None:
    """A replaced file keeps its mode (a private trainer.json stays 0600 whatever the writer's umask)."""
    try:
        os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))
    except FileNotFoundError:
        pass  # a new file: the umask decides


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
    """Put the complete folder `tmp` in the place of `target` (for steps split across processes, e.g. ranks).

    An old `target` is renamed aside (`.old-<name>`) first and removed only after the new one is in place, so
    a kill at any moment leaves a whole folder under one of the three names (`checkpoint_recovery` sorts it out).
    """
    aside = target.with_name(f".old-{target.name}")
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)  # a leftover of an earlier interrupted replace
        target.rename(aside)
    tmp.rename(target)
    _fsync_dir(target.parent)
    shutil.rmtree(aside, ignore_errors=True)


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


class AppendFile:
    """An append-only file (events.jsonl, flagged.jsonl, trainer.log) whose every `append` lands whole or not
    at all: when a full disk stops a write halfway, what it had put down is cut off again, so readers and a
    later resume only ever meet whole lines."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask sets the mode

    def append(self, data: bytes) -> None:
        """Write `data` at the end; on an OSError (ENOSPC, EDQUOT) the file is as before and the error raised."""
        size = os.fstat(self.fd).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, size)  # shrinking needs no free space
            raise

    def close(self) -> None:
        os.close(self.fd)


def cut_torn_tail(path: str | Path) -> int:
    """Cut a line-per-record file back to its last newline (a process killed mid-write left half a line there);
    returns the number of bytes removed, so an append never joins a torn line into an invalid one mid-file."""
    path = Path(path)
    try:
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0 or _last_byte(fh, size) == b"\n":
                return 0
            keep = _last_newline_end(fh, size)
            fh.truncate(keep)
            return size - keep
    except FileNotFoundError:
        return 0


def _last_byte(fh, size: int) -> bytes:
    fh.seek(size - 1)
    return fh.read(1)


def _last_newline_end(fh, size: int, chunk: int = 1 << 16) -> int:
    """The offset just past the file's last newline (0 when it has none), read backwards chunk by chunk."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        fh.seek(start)
        at = fh.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0
