"""No event line longer than the protocol's limit (`protocol.MAX_LINE_BYTES`): a client refuses such a line, so
one oversized field (a huge log message, a flagged sample of 100k tokens) would otherwise stop every `attach`
at that event, live or replayed, forever.

An oversized event is cut, biggest field first, until it fits: text is shortened with a note in the text, a list
loses items from its end (a list whose one item is too big has that item cut instead). The event keeps its
type and fields, so it still matches its definition; `cut_to_fit` says what it cut, for a note in the log.
"""

from __future__ import annotations

import json
from typing import Any

from trainer_core.live.protocol import MAX_LINE_BYTES

ENVELOPE = ("v", "type", "seq", "ts")
_TEXT_NOTE = " [... {n} bytes cut: over the live protocol's line limit]"
_MAX_CUTS = 64


def dumps(event: dict[str, Any]) -> bytes:
    """One events.jsonl line, newline included (the log's one encoder)."""
    return (json.dumps(event, ensure_ascii=False, allow_nan=False, default=str) + "\n").encode("utf-8")


def cut_to_fit(event: dict[str, Any], line: bytes, limit: int = MAX_LINE_BYTES) -> tuple[bytes, list[str]]:
    """`line` (the encoded `event`) when it fits in `limit` bytes, else the event cut in place until it does,
    re-encoded; and what was cut (`["message: 1048000 bytes of text", ...]`)."""
    cuts: list[str] = []
    payload_keys = [k for k in event if k not in ENVELOPE]
    for _ in range(_MAX_CUTS):
        excess = len(line) - 1 - limit
        if excess <= 0:
            return line, cuts
        key = max(payload_keys, key=lambda k: _size(event[k]))
        event[key], what = _shrink(event[key], excess)
        cuts.append(f"{key}{what}")
        line = dumps(event)
    raise ValueError(f"{event.get('type')} event still over {limit} bytes after {_MAX_CUTS} cuts: {cuts}")


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))


def _shrink(value: Any, excess: int) -> tuple[Any, str]:
    """`value` at least `excess` encoded bytes smaller (or as small as it gets), and where/what was cut."""
    if isinstance(value, str):
        data = value.encode("utf-8")
        keep = max(0, len(data) - excess - len(_TEXT_NOTE) - 12)
        return (data[:keep].decode("utf-8", "ignore") + _TEXT_NOTE.format(n=len(data) - keep),
                f": {len(data) - keep} bytes of text")
    if isinstance(value, dict) and value:
        key = max(value, key=lambda k: _size(value[k]))
        if isinstance(value[key], list) and len(value[key]) > 1:
            return _shrink_parallel(value, key, excess)
        value[key], what = _shrink(value[key], excess)
        return value, f".{key}{what}"
    if isinstance(value, list) and value:
        return _shrink_list(value, excess)
    raise ValueError(f"cannot cut a {type(value).__name__} to fit the line limit")


def _shrink_list(items: list[Any], excess: int) -> tuple[list[Any], str]:
    """Drop items from the end; when only the first would be left and it is still too big, cut into it."""
    keep = _longest_prefix(lambda k: _size(items[:k]), len(items), _size(items) - excess)
    removed = _size(items) - _size(items[:keep])
    dropped = len(items) - keep
    if removed >= excess or _size(items[0]) <= excess - removed or not isinstance(items[0], (str, dict, list)):
        return items[:keep], f": {dropped} of {len(items)} items dropped"
    first, what = _shrink(items[0], excess - removed)
    return [first], f"[0]{what}" + (f" ({dropped} later items dropped)" if dropped else "")


def _shrink_parallel(obj: dict[str, Any], key: str, excess: int) -> tuple[dict[str, Any], str]:
    """Cut the list `obj[key]` and every sibling list of the same length to one shorter length, so parallel
    lists (a flagged sample's tokens, losses, weights, zones) stay aligned item by item."""
    n = len(obj[key])
    keys = [k for k, v in obj.items() if isinstance(v, list) and len(v) == n]

    def size(keep: int) -> int:
        return sum(_size(obj[k][:keep]) for k in keys)

    keep = _longest_prefix(size, n, size(n) - excess)
    for k in keys:
        obj[k] = obj[k][:keep]
    return obj, f".{'/'.join(keys)}: {n - keep} of {n} items dropped"


def _longest_prefix(size: Any, n: int, budget: int) -> int:
    """The most items (at least 1) whose encoded prefix `size(k)` fits `budget`: a binary search, so a list of
    200k tokens costs some 18 encodes, not 200k."""
    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
