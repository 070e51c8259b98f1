"""Learning-rate schedules: linear warmup, then cosine, linear or constant, times a live LR scale.

On resume the schedule is rebuilt from the run's *current* config at the resumed step (`rebuild_at`): the
checkpoint keeps the weights, the optimizer's moments and the data position, never an LR the config no longer
says (docs: "Resuming: which settings win").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

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


def apply_current_lr(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set every param group's LR to what the schedule says for the step it stands at (after a change of the
    peak LR, the schedule or `lr_scale`), effective from the next optimizer step."""
    groups = scheduler.optimizer.param_groups
    for group, base, fn in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]  # what get_last_lr() reports


def rebuild_at(scheduler: torch.optim.lr_scheduler.LambdaLR, cfg: TrainingConfig, step: int) -> None:
    """Resume rule: the config's optimizer hyper-parameters (lr, betas, weight_decay) replace the checkpoint's,
    and the schedule (kind, warmup, floor, total steps) continues from `step` as this config defines it."""
    groups = scheduler.optimizer.param_groups
    for group in groups:
        group["initial_lr"] = cfg.lr
        group["betas"] = tuple(cfg.betas)
        group["weight_decay"] = cfg.weight_decay
    scheduler.base_lrs = [cfg.lr] * len(groups)
    scheduler.last_epoch = step
    apply_current_lr(scheduler)


def schedule_record(cfg: TrainingConfig, total: int) -> dict[str, Any]:
    """What a checkpoint notes about the schedule it was trained on, so a resume can say what changed."""
    return {"lr": cfg.lr, "scheduler": cfg.scheduler, "warmup_steps": cfg.warmup_steps,
            "warmup_ratio": cfg.warmup_ratio, "min_lr_ratio": cfg.min_lr_ratio, "total_steps": total,
            "betas": list(cfg.betas), "weight_decay": cfg.weight_decay}
