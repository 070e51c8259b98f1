"""Bounds on flagged samples, set where they are made (the training thread pays for what it keeps only).

A sample of a long context shows a window of at most WINDOW_TOKENS tokens around its zeroed tokens (or, with
none, its worst one); `offset` says where the window starts and `length` how many tokens the sample has, and
`zeroed_tokens` still counts them all. The samples of one step go out in `flagged` events of at most
EVENT_BYTES each, so no event comes near the protocol's line limit and none is ever cut."""

from __future__ import annotations

from typing import Any

WINDOW_TOKENS = 512
CONTEXT_TOKENS = 64
"""Tokens shown before the first zeroed token (and after the last, when the window has room)."""
EVENT_BYTES = 256 * 1024
ZEROED = 3
"""The zeroed zone's index (protocol.ZONES order: easy, boost, hard, zeroed)."""


def window(losses: list[float | None], zones: list[int | None]) -> tuple[int, int]:
    """[start, end) of the tokens a flagged sample shows."""
    n = len(losses)
    if n <= WINDOW_TOKENS:
        return 0, n
    hot = [t for t, z in enumerate(zones) if z == ZEROED]
    if not hot:
        scored = [(loss, t) for t, loss in enumerate(losses) if loss is not None]
        hot = [max(scored)[1]] if scored else [0]
    start = max(0, min(hot[0] - CONTEXT_TOKENS, n - WINDOW_TOKENS))
    return start, min(n, start + WINDOW_TOKENS)


def estimated_bytes(sample: dict[str, Any]) -> int:
    """About what the sample costs in an events.jsonl line (tokens' text plus ~40 bytes per token of numbers)."""
    return 400 + sum(len(t) + 40 for t in sample.get("tokens") or [])


def event_chunks(samples: list[dict[str, Any]], budget: int = EVENT_BYTES) -> list[list[dict[str, Any]]]:
    """`samples` split, in order, into runs of at most `budget` estimated bytes (one sample at least each)."""
    chunks: list[list[dict[str, Any]]] = []
    size = budget
    for sample in samples:
        cost = estimated_bytes(sample)
        if size + cost > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(sample)
        size += cost
    return chunks
