"""A value named in an error message, cut short: a message never grows with the input it names (a client's
3000-character `set` value, a paragraph pasted into a config field). The config parser, the protocol and the
live `set` checks all quote through here."""

from __future__ import annotations

import reprlib
from typing import Any

LIMIT = 60
"""The most characters of a value an error message shows."""

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = LIMIT
_REPR.maxlevel = 2


def cut(text: str) -> str:
    """`text` when it is short, else its start and `...`: at most `LIMIT` characters."""
    return text if len(text) <= LIMIT else text[:LIMIT - 3] + "..."


def quoted(value: Any) -> str:
    """`repr(value)`, cut to `LIMIT` characters; a container's is bounded while it is built (reprlib), so a huge
    or deeply nested value costs no more to name than a small one."""
    return cut(_REPR.repr(value))
