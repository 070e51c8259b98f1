"""Learning-rate schedules: linear warmup, then cosine, linear or constant, times a live LR scale."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainer_core.config import TrainingConfig


def lr_factor(step: int, total: int, cfg: TrainingConfig) -> float:
    """Multiplier of the peak LR after `step` optimizer steps."""
    warmup = cfg.warmup_steps or int(cfg.warmup_ratio * total)
    if warmup and step < warmup:
        return (step + 1) / warmup
    if cfg.scheduler == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = cfg.min_lr_ratio
    if cfg.scheduler == "linear":
        return floor + (1 - floor) * (1 - progress)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainingConfig, total: int,
                   scale: Callable[[], float]) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over `lr_factor`; `scale()` is read at every step so `set lr_scale` acts at once."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, cfg) * scale())
