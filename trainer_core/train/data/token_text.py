"""Readable text for each token of a sample, for the Inspector.

Byte-level BPE tokenizers (GPT-2, Qwen2, SmolLM2, Llama 3) often split one Chinese character or emoji over
several tokens; decoding tokens one at a time then shows U+FFFD for each piece. Here the bytes of successive
tokens go through one incremental UTF-8 decoder instead: a character appears on the token that completes it,
the tokens before it that hold only part of it get "", and the texts join to exactly the decoded sample.
"""

from __future__ import annotations

import codecs
from functools import lru_cache


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of the GPT-2 byte-to-printable-character table that byte-level BPE vocabularies are written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """One string per token id; byte-level pieces are decoded across token boundaries."""
    pieces = tokenizer.convert_ids_to_tokens(ids)
    special = set(getattr(tokenizer, "all_special_tokens", [])) | set(tokenizer.get_added_vocab())
    table = _byte_decoder()
    if not all(p in special or all(ch in table for ch in p) for p in pieces if p is not None):
        return [tokenizer.decode([i]) for i in ids]  # not byte-level (e.g. SentencePiece): per token is fine
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    out = []
    for piece in pieces:
        if piece is None:
            out.append("")
        elif piece in special:
            out.append(decoder.decode(b"", final=True) + piece)  # a dangling partial character, then the token
            decoder.reset()
        else:
            out.append(decoder.decode(bytes(table[ch] for ch in piece)))
    if out:
        out[-1] += decoder.decode(b"", final=True)
    return out
