"""NLIRG: each target token's loss weighted by a nonlinear function of that same loss.

Pure torch, no I/O. The formula and the zone table are a contract (docs/design.md §5):

    L <= loss_threshold              w = max_lr / (1 + exp(-k (L - x0))) + eps
    loss_threshold < L < deadline    w = max_lr / (1 + exp(fall_slope (L - fall_center))) + eps + min_lr
    L >= loss_deadline               w = 0

Weights are computed in float32 from the detached loss, whatever the model's dtype.
"""

from __future__ import annotations

import torch

from trainer_core.config import NlirgParams

EPS = float(torch.finfo(torch.float32).eps)

ZONE_NAMES = ("easy", "boost", "hard", "zeroed")


def nlirg_weights(losses: torch.Tensor, params: NlirgParams | None = None) -> torch.Tensor:
    """Weight of every token given its cross-entropy; same shape, float32, no gradient."""
    p = params or NlirgParams()
    L = losses.detach().float()
    weighting = p.effective_weighting
    if weighting == "plain":
        return torch.ones_like(L)
    if weighting == "dft":
        return torch.exp(-L)
    rising = p.max_lr * torch.sigmoid(p.k * (L - p.x0)) + EPS
    falling = p.max_lr * torch.sigmoid(-p.fall_slope * (L - p.fall_center)) + EPS + p.min_lr
    w = torch.where(L <= p.loss_threshold, rising, falling)
    return torch.where(L >= p.loss_deadline, torch.zeros_like(w), w)


def zone_of(losses: torch.Tensor, params: NlirgParams | None = None) -> torch.Tensor:
    """Zone index per token: 0 easy-cut, 1 boost, 2 hard-cut, 3 zeroed (int64)."""
    p = params or NlirgParams()
    L = losses.detach().float()
    zone = (L > p.easy_max).long() + (L >= p.hard_min).long() + (L >= p.loss_deadline).long()
    return zone


def weighted_loss_sum(losses: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sum(w * L), number of tokens with w > 0) for flat tensors of target tokens.

    The caller divides the first by the second, summed over an accumulation window, which is the
    reference's reduction. The sum keeps the graph through `losses`; the count has none.
    """
    return (losses.float() * weights).sum(), (weights > 0).sum()
