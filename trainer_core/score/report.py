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
"""Answers with fewer tokens (end-of-turn included) have no within-answer statistics worth the name."""
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
    if n == 0:
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


def build_row(item: ScoreItem, sig: RowSignals | None, bare: RowSignals | None, mode: str,
              texts: list[str]) -> dict[str, Any]:
    """The row of one record; `texts` are its tokens as text (token_text.token_texts)."""
    positions = sig.positions if sig else []
    loss = np.array(sig.losses if sig else [], dtype=np.float64)
    entropy = np.array(sig.entropies if sig and sig.entropies is not None else [0.0] * len(loss), dtype=np.float64)
    bare_loss = np.array(bare.losses if bare else [], dtype=np.float64)
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
        "zeroed_tokens": zeroed, "index": item.index,
    })
    row.update(_token_columns(len(texts), positions, loss, entropy, div))
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
