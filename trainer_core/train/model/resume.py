"""What a resumed run keeps from its checkpoint, what it takes from its config, and the one line that says so.

The rule (README, "Resuming"): the checkpoint gives the weights, the optimizer's moments, the RNG and the data
position; the run's config (as `--set`, `--max-steps` or a relaunch left it) gives the optimizer's
hyper-parameters and the LR schedule, rebuilt at the resumed step; a live `lr_scale` resets to 1 unless the
resume asks to keep it. Whatever changed is said in one line in trainer.log, as a `log` event and on the
terminal, so the run never trains at an LR its config.yaml does not state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trainer_core.config import TrainingConfig
from trainer_core.train.schedule import lr_factor, schedule_record

HYPER_KEYS = ("lr", "scheduler", "warmup_steps", "warmup_ratio", "min_lr_ratio", "betas", "weight_decay")


@dataclass
class ResumeNote:
    """The resume line and whether it reports a change (a change is a warning: it reaches the terminal)."""

    text: str
    changed: bool


def old_schedule(state: dict[str, Any], checkpoint_lr: float) -> dict[str, Any]:
    """The schedule the checkpoint was trained on; older checkpoints noted only its total and peak LR."""
    return state.get("schedule") or {"lr": checkpoint_lr, "total_steps": state.get("total_steps")}


def describe(where: str, step: int, old: dict[str, Any], cfg: TrainingConfig, total: int, lr_now: float,
             old_scale: float, keep_scale: bool) -> ResumeNote:
    """`resumed from ... at step N: lr 0.0002 -> 0.001, schedule cosine over 8 steps (was 4 steps ...)...`"""
    new = schedule_record(cfg, total)
    parts = [_lr_part(old, new), _schedule_part(old, new, step)]
    parts += [f"{key} {old[key]} -> {new[key]}" for key in HYPER_KEYS[2:]
              if key in old and _differs(old[key], new[key])]
    parts.append(f"LR now {lr_now:.3g}")
    scale = _scale_part(old_scale, keep_scale)
    if scale:
        parts.append(scale)
    changed = any(key in old and _differs(old[key], new[key]) for key in (*HYPER_KEYS, "total_steps")) or (
        old_scale != 1.0 and not keep_scale)
    return ResumeNote(f"resumed from {where} at step {step}: " + ", ".join(parts), changed)


def _lr_part(old: dict[str, Any], new: dict[str, Any]) -> str:
    if _differs(old.get("lr"), new["lr"]):
        return f"lr {old['lr']:g} -> {new['lr']:g}"
    return f"lr {new['lr']:g}"


def _schedule_part(old: dict[str, Any], new: dict[str, Any], step: int) -> str:
    text = f"schedule {new['scheduler']} over {new['total_steps']} steps"
    old_total = old.get("total_steps")
    was = []
    if "scheduler" in old and old["scheduler"] != new["scheduler"]:
        was.append(old["scheduler"])
    if isinstance(old_total, int) and old_total != new["total_steps"]:
        was.append(f"{old_total} steps")
    if not was:
        return text
    text += f" (was {' over '.join(was)}"
    if _ended_at_zero(old, step):
        text += f", whose LR had reached 0 at step {old_total}; rebuilt at step {step}"
    return text + ")"


def _ended_at_zero(old: dict[str, Any], step: int) -> bool:
    """Whether the checkpoint's own schedule had run out (a finished cosine or linear run without a floor)."""
    total = old.get("total_steps")
    if not isinstance(total, int) or step < total or "scheduler" not in old:
        return False
    known = {f.name for f in dataclasses.fields(TrainingConfig)}
    past = TrainingConfig(**{k: v for k, v in old.items() if k in known and k != "betas"})
    return lr_factor(step, total, past) == 0.0


def _scale_part(old_scale: float, keep: bool) -> str | None:
    if old_scale == 1.0:
        return None
    if keep:
        return f"lr_scale {old_scale:g} kept (--keep-lr-scale)"
    return f"lr_scale {old_scale:g} reset to 1 (resume with --keep-lr-scale to keep it)"


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return [float(x) for x in a] != [float(x) for x in b]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) != float(b)
    return a != b
