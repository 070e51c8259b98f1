"""DeepSpeed's JIT-built C++ ops (on the CPU, `deepspeed_shm_comm` at every rank's start) go to a folder of this
Python environment, never to the one `~/.cache/torch_extensions` every environment of the user shares.

torch builds an op under a lock file in `TORCH_EXTENSIONS_DIR`; a build that was interrupted (a killed rank, a
Ctrl+C during the first start) leaves the lock behind, and every later run, of any environment, waits on it
forever. One folder per environment keeps two checkouts or two venvs from waiting on (or rebuilding over) each
other's ops. A TORCH_EXTENSIONS_DIR the user set is left as it is.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

VARIABLE = "TORCH_EXTENSIONS_DIR"


def jit_cache_dir() -> Path:
    """`<venv>/torch_extensions` (sys.prefix), or, where the environment is not writable (a system Python),
    `~/.cache/nlirg/torch_extensions/<digest of sys.prefix>` ($XDG_CACHE_HOME is honoured)."""
    prefix = Path(sys.prefix)
    if os.access(prefix, os.W_OK):
        return prefix / "torch_extensions"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    digest = hashlib.sha256(str(prefix.resolve()).encode()).hexdigest()[:12]
    return cache / "nlirg" / "torch_extensions" / digest


def with_jit_cache(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with TORCH_EXTENSIONS_DIR set to this environment's folder, unless it names one already."""
    return dict(env) if env.get(VARIABLE) else {**env, VARIABLE: str(jit_cache_dir())}


def use_jit_cache(env: MutableMapping[str, str] = os.environ) -> None:
    """Set it in this process (a rank started by a launcher we did not start: another node, a user's command)."""
    if not env.get(VARIABLE):
        env[VARIABLE] = str(jit_cache_dir())
