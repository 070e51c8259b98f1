"""One score-file row per record: the mode's raw score, flags, the worst spans and the tokens with their loss,
entropy and label (the Data screen colours them). `quality` is added once every record is scored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainer_core.config import NlirgParams
from trainer_core.score.encode import ScoreItem
from trainer_core.score.forward import RowSignals
from trainer_core.score.modes import (
    Divergence,
    Span,
    divergence,
    divergence_score,
    filtered_score,
    ifd_score,
    similarity_score,
    spans,
)

MAX_SPANS = 5
SHORT_ANSWER = 3
"""Answers with fewer content tokens (structural tokens left out) have no within-answer statistics worth the
name."""
ZEROED_LOSS = NlirgParams().loss_deadline
"""NLIRG's default loss deadline: tokens at or above it would get weight 0 in training."""


def raw_score(mode: str, loss: np.ndarray, entropy: np.ndarray, div: Divergence, bare_loss: np.ndarray) -> float:
    if mode == "divergence":
        return divergence_score(div)
    if mode == "similarity_rank":
        return similarity_score(loss, entropy)
    if mode == "filtered_rank":
        return filtered_score(loss, entropy)
    return ifd_score(loss, bare_loss)


def record_flags(item: ScoreItem, n: int, found: list[Span], zeroed: int, mode: str, score: float) -> list[str]:
    flags = []
    if item.empty_answer:
        flags.append("empty_answer")
    if n == 0 and not item.empty_answer:  # an empty answer has only its structural end token
        flags.append("no_answer_tokens")
    elif n < SHORT_ANSWER:
        flags.append("short_answer")
    if item.truncated:
        flags.append("truncated")
    flags += sorted({s.pattern for s in found})
    if zeroed:
        flags.append("zeroed")
    if mode == "ifd" and n and score >= 1.0:
        flags.append("prompt_does_not_help")
    return flags


def _content(sig: RowSignals | None, ids: list[int], special: frozenset[int]) -> RowSignals:
    """The signals of the answer's content tokens: structural ones (the tokenizer's special tokens, such as the
    end-of-turn token) left out. Their loss says how the chat template is written, not whether the answer is
    right, and one end token at loss 20 would dominate the smoothing of its neighbours and the score."""
    if sig is None:
        return RowSignals([], [], [])
    keep = [k for k, pos in enumerate(sig.positions) if ids[pos] not in special]
    entropies = sig.entropies if sig.entropies is not None else [0.0] * len(sig.losses)
    return RowSignals([sig.positions[k] for k in keep], [sig.losses[k] for k in keep],
                      [entropies[k] for k in keep])


def build_row(item: ScoreItem, sig: RowSignals | None, bare: RowSignals | None, mode: str,
              texts: list[str], special: frozenset[int] = frozenset()) -> dict[str, Any]:
    """The row of one record; `texts` are its tokens as text (token_text.token_texts); `special` the tokenizer's
    special ids, which leave the statistics (`_content`) and keep their loss and entropy in the token columns."""
    content = _content(sig, item.input_ids, special)
    positions = content.positions
    loss = np.array(content.losses, dtype=np.float64)
    entropy = np.array(content.entropies, dtype=np.float64)
    bare_ids = item.bare.input_ids if item.bare is not None else []
    bare_loss = np.array(_content(bare, bare_ids, special).losses if bare else [], dtype=np.float64)
    div = divergence(loss, entropy)
    score = raw_score(mode, loss, entropy, div, bare_loss)
    found = spans(div)
    zeroed = int((loss >= ZEROED_LOSS).sum())
    row: dict[str, Any] = {"id": item.record.id} if item.record.id is not None else {}
    row.update({
        "source": f"{Path(item.record.source).resolve()}:{item.record.line}",
        "quality": None, "score": round(score, 6), "mode": mode,
        "flags": record_flags(item, len(loss), found, zeroed, mode, score),
        "spans": [_span_row(s, positions, texts, loss, entropy) for s in found[:MAX_SPANS]],
        "answer_tokens": len(loss), "mean_loss": _mean(loss), "mean_entropy": _mean(entropy),
        "zeroed_tokens": zeroed, "structural_tokens": len(sig.positions) - len(positions) if sig else 0,
        "index": item.index,
    })
    row.update(_token_columns(len(texts), positions, loss, entropy, div))
    if sig is not None:  # structural tokens: their own loss and entropy shown, no label
        for k, pos in enumerate(sig.positions):
            if row["losses"][pos] is None:
                row["losses"][pos] = round(float(sig.losses[k]), 4)
                row["entropies"][pos] = round(float(sig.entropies[k]), 4) if sig.entropies is not None else 0.0
    row["tokens"] = texts
    return row


def _span_row(span: Span, positions: list[int], texts: list[str], loss: np.ndarray, entropy: np.ndarray,
              ) -> dict[str, Any]:
    first, last = positions[span.start], positions[span.end - 1]
    return {"text": "".join(texts[first:last + 1]), "start": first, "end": last + 1, "pattern": span.pattern,
            "d": round(span.d_max, 3), "loss": round(float(loss[span.start:span.end].mean()), 3),
            "entropy": round(float(entropy[span.start:span.end].mean()), 3)}


def _token_columns(width: int, positions: list[int], loss: np.ndarray, entropy: np.ndarray, div: Divergence,
                   ) -> dict[str, list]:
    """Per token of the sample: loss, entropy and label of the answer tokens, None for prompt tokens."""
    losses: list[float | None] = [None] * width
    entropies: list[float | None] = [None] * width
    labels: list[str | None] = [None] * width
    for k, pos in enumerate(positions):
        losses[pos], entropies[pos], labels[pos] = round(float(loss[k]), 4), round(float(entropy[k]), 4), \
            div.labels[k]
    return {"losses": losses, "entropies": entropies, "labels": labels}


def _mean(x: np.ndarray) -> float | None:
    return round(float(x.mean()), 4) if len(x) else None
