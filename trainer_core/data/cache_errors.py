"""A disk error while the data cache is read or written (full disk, quota, permissions) as one DataError line
naming the folder and what to do, never an OSError traceback. Torch-free: the CLI's data check uses it."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trainer_core.data.records import DataError

FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def cache_disk_errors(root: Path) -> Iterator[None]:
    """Turn an OSError raised inside into a one-line DataError (the cache's entries stay whole: they appear by
    an atomic rename)."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or root
        if exc.errno in FULL:
            raise DataError(f"data cache {root}: no space left on the device ({where}); free some space, clear old "
                            "entries (`nlirg data cache --prune`), or point data.cache_dir (or NLIRG_DATA_CACHE) at "
                            "a disk with room") from None
        raise DataError(f"data: {where}: {exc.strerror or exc}") from None
