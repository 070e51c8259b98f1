"""The scoring modes (docs/score.md defines each): from one answer's per-token loss L and entropy H to a raw
score, where higher always means worse, and the token labels and spans a reviewer looks at.

Pure numpy on one answer at a time. Every function is defined for any answer length, 0 and 1 included:
statistics that need two tokens (a z-score, a correlation) fall back to 0, so no score is ever NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("divergence", "similarity_rank", "filtered_rank", "ifd")
AUTO = "auto"
"""The default `--mode`: `PROMPT_ANSWER_MODE` when every record has a prompt, `PLAIN_TEXT_MODE` otherwise."""
DEFAULT_MODE = AUTO
PROMPT_ANSWER_MODE = "ifd"
"""The mode that found the most planted bad records (bench.score_planted, docs/score.md); it compares each answer
with and without its prompt, so it needs prompt/answer records."""
PLAIN_TEXT_MODE = "divergence"
"""What `auto` scores a corpus with when any record is plain text (CPT data), which ifd cannot score."""
SMOOTH_WINDOW = 3
"""Tokens in the centred moving average applied to L and H before z-scoring (divergence)."""
Z_LABEL = 0.6
"""|z| beyond which a smoothed loss or entropy counts as high or low within its answer."""
Z_CERTAIN = 1.0
"""Entropy z below which a token above the answer's mean loss is a suspicious certainty."""
SPAN_MIN_D = 1.96
"""A run of labelled tokens becomes a span when its largest d = z_L - z_H reaches this (the normal 95% bound)."""
FILTER_LOSS = 3.0
FILTER_ENTROPY = 1.0
MIN_STD = 1e-6
"""Below this standard deviation a sequence is constant: its z-scores are 0."""

SUSPECT, HARD, CERTAIN = "label_error", "hard", "suspicious_certainty"
LABELS = (SUSPECT, HARD, CERTAIN)
"""Token labels, most severe first (a span's pattern is its commonest label, ties to the more severe)."""


def smooth(x: np.ndarray, window: int = SMOOTH_WINDOW) -> np.ndarray:
    """Centred moving average; at the edges the window holds only the tokens that exist."""
    n = len(x)
    if n == 0:
        return x.astype(np.float64)
    half = window // 2
    sums = np.concatenate(([0.0], np.cumsum(x, dtype=np.float64)))
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    return (sums[hi] - sums[lo]) / (hi - lo)


def zscore(x: np.ndarray) -> np.ndarray:
    """(x - mean) / std (sample std); all zeros for fewer than two values or a constant sequence."""
    if len(x) < 2:
        return np.zeros(len(x))
    std = float(np.std(x, ddof=1))
    return (x - x.mean()) / std if std >= MIN_STD else np.zeros(len(x))


@dataclass
class Divergence:
    """Per-token divergence of one answer."""

    z_loss: np.ndarray
    z_entropy: np.ndarray
    d: np.ndarray
    """z_L - z_H: high where the loss is high and the model was sure."""
    labels: list[str | None]


def divergence(loss: np.ndarray, entropy: np.ndarray) -> Divergence:
    z_l, z_h = zscore(smooth(loss)), zscore(smooth(entropy))
    mean_loss = float(loss.mean()) if len(loss) else 0.0
    labels: list[str | None] = []
    for zl, zh, raw in zip(z_l, z_h, loss, strict=True):
        if zl > Z_LABEL and zh < -Z_LABEL:
            labels.append(SUSPECT)
        elif zl > Z_LABEL and zh > Z_LABEL:
            labels.append(HARD)
        elif raw > mean_loss and zh < -Z_CERTAIN:
            labels.append(CERTAIN)
        else:
            labels.append(None)
    return Divergence(z_l, z_h, z_l - z_h, labels)


def divergence_score(div: Divergence) -> float:
    """Sum of |d| over labelled tokens, divided by the answer length."""
    n = len(div.d)
    if n == 0:
        return 0.0
    labelled = np.array([label is not None for label in div.labels])
    return float(np.abs(div.d[labelled]).sum() / n)


@dataclass
class Span:
    """A run of labelled answer tokens whose largest d reaches SPAN_MIN_D; indices into the answer tokens."""

    start: int
    end: int
    """Exclusive."""
    d_max: float
    pattern: str


def spans(div: Divergence) -> list[Span]:
    """Runs of consecutive labelled tokens with max d >= SPAN_MIN_D, the most divergent first."""
    out: list[Span] = []
    start = None
    for i, label in enumerate([*div.labels, None]):
        if label is not None and start is None:
            start = i
        elif label is None and start is not None:
            d_max = float(div.d[start:i].max())
            if d_max >= SPAN_MIN_D:
                out.append(Span(start, i, d_max, _dominant(div.labels[start:i])))
            start = None
    return sorted(out, key=lambda s: -s.d_max)


def _dominant(labels: list[str | None]) -> str:
    counts = {label: labels.count(label) for label in LABELS}
    return max(LABELS, key=lambda label: (counts[label], -LABELS.index(label)))


def similarity_score(loss: np.ndarray, entropy: np.ndarray) -> float:
    """Negative Pearson correlation of L and H over the answer (0 when either is constant or n < 2)."""
    if len(loss) < 2 or np.std(loss) < MIN_STD or np.std(entropy) < MIN_STD:
        return 0.0
    return float(-np.corrcoef(loss, entropy)[0, 1])


def filtered_weights(loss: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """Per token: 1 if H <= 1 and L > 3 (sure and wrong), 0.5 if H > 1 and L > 3 (unsure and wrong), else 0."""
    wrong = loss > FILTER_LOSS
    return np.where(wrong & (entropy <= FILTER_ENTROPY), 1.0, np.where(wrong, 0.5, 0.0))


def filtered_score(loss: np.ndarray, entropy: np.ndarray) -> float:
    return float(filtered_weights(loss, entropy).sum() / len(loss)) if len(loss) else 0.0


def ifd_score(loss: np.ndarray, bare_loss: np.ndarray) -> float:
    """Mean answer loss given the prompt / mean answer loss without it (1 when either side has no token)."""
    if len(loss) == 0 or len(bare_loss) == 0:
        return 1.0
    return float(loss.mean() / max(float(bare_loss.mean()), MIN_STD))
