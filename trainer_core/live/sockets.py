"""Where a run's socket lives and who is on the other end (docs/design.md §4): the socket directory (0700, yours
only), the socket path of a run (short enough for the 107-byte limit at any depth), the peer's credentials
(SO_PEERCRED), and the clean-up of sockets left by killed trainers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
from pathlib import Path

SOCKET_PATH_LIMIT = 107
"""sun_path holds 108 bytes including the terminating NUL."""


def socket_dir() -> Path:
    """`$XDG_RUNTIME_DIR/nlirg/` when that is short enough, else `/tmp/nlirg-<uid>/`; created 0700."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    candidates = [Path(runtime) / "nlirg"] if runtime and os.path.isabs(runtime) else []
    candidates.append(Path("/tmp") / f"nlirg-{os.getuid()}")  # not $TMPDIR: that may be long or per-session
    for path in candidates:
        if len(str(path)) + 1 + _SOCKET_NAME_LEN <= SOCKET_PATH_LIMIT:
            return path
    return candidates[-1]


_SOCKET_NAME_LEN = len("0123456789abcdef.sock")


def socket_path(run_dir: str | Path) -> Path:
    """The socket of a run: a short hash of its absolute directory, so any depth fits the 107-byte limit."""
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
    return socket_dir() / f"{digest}.sock"


def ensure_socket_dir(path: Path) -> None:
    """Create the socket directory 0700, or tighten it; refuse one owned by another user."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {st.st_uid}, not to you; remove it or set XDG_RUNTIME_DIR")
    if st.st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected (Linux SO_PEERCRED)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def remove_stale_sockets(directory: Path) -> list[Path]:
    """Delete sockets in `directory` that nobody listens on (left by a killed trainer); return them."""
    removed = []
    for path in directory.glob("*.sock"):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(path))
        except ConnectionRefusedError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed.append(path)
        except OSError:
            pass  # busy or not ours to judge: leave it
        finally:
            probe.close()
    return removed
