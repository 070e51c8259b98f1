"""How much text can matter for `max_length` tokens: an SFT sample is cut to `data.max_length` tokens, so a
message longer than the characters that many tokens can cover is cut to that before it is tokenized. A 30 MB
answer then costs the tokenizer what a few pages cost, not gigabytes, and the row is the same (DESIGN: rows
never exceed max_length tokens)."""

from __future__ import annotations

from typing import Any

MARGIN_TOKENS = 64
"""Tokens kept past max_length, so the cut word at the end never changes the first max_length tokens."""

_LONGEST: dict[int, tuple[Any, int]] = {}


def longest_token_chars(tokenizer) -> int:
    """Characters of text that one token can cover at most: the longest vocabulary entry (a byte-level entry's
    characters stand for bytes, each at most one character of text). Cached per tokenizer."""
    key = id(tokenizer)
    held = _LONGEST.get(key)
    if held is None or held[0] is not tokenizer:
        vocab = tokenizer.get_vocab()
        held = (tokenizer, max((len(t) for t in vocab), default=1))
        _LONGEST[key] = held
    return max(1, held[1])


def text_bound(tokenizer, max_length: int) -> int:
    """Characters beyond which a message cannot change a sample cut to `max_length` tokens."""
    return (max_length + MARGIN_TOKENS) * longest_token_chars(tokenizer)


def cut_messages(messages: list[dict[str, Any]], bound: int) -> list[dict[str, Any]]:
    """The conversation with every message's content cut to `bound` characters (the same list when none is)."""
    if all(len(m.get("content") or "") <= bound for m in messages):
        return messages
    return [{**m, "content": m["content"][:bound]} if len(m.get("content") or "") > bound else m for m in messages]
