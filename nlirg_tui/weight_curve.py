"""The NLIRG weight curve in plain Python, for drawing it live in the NLIRG dialog without torch.

It mirrors `trainer_core.train.loss.weights.nlirg_weights` (docs/design.md §5); a test checks the two agree.
"""

from __future__ import annotations

import math

from trainer_core.config import NlirgParams

EPS = 1.1920928955078125e-07  # float32 machine epsilon, as torch.finfo(torch.float32).eps


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def weight(loss: float, p: NlirgParams) -> float:
    weighting = p.effective_weighting
    if weighting == "plain":
        return 1.0
    if weighting == "dft":
        return math.exp(-loss)
    if loss >= p.loss_deadline:
        return 0.0
    if loss <= p.loss_threshold:
        return p.max_lr * _sigmoid(p.k * (loss - p.x0)) + EPS
    return p.max_lr * _sigmoid(-p.fall_slope * (loss - p.fall_center)) + EPS + p.min_lr


def curve(p: NlirgParams, max_loss: float = 20.0, points: int = 200) -> tuple[list[float], list[float]]:
    xs = [max_loss * i / (points - 1) for i in range(points)]
    return xs, [weight(x, p) for x in xs]
