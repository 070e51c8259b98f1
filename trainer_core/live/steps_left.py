"""Whether a resume has steps left to train, decided before any trainer starts (torch-free: the CLI asks).

A finished run resumed with the step count it finished at has nothing to train: `--resume RUN --merge-lora`
then only merges (`trainer_core.train.merge_final`), and a plain `--resume` says so instead of starting a
trainer that would rewrite the run's summary, evaluation, start time and lr_scale for nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from trainer_core.config import RunConfig
from trainer_core.live.rundir import FINAL, STATE_FILE, TRAINER_FILE, read_json

STEP_COUNT_KEYS = ("max_steps", "epochs", "batch_size", "grad_accum", "token_batch")
"""The training keys the number of steps depends on (with the whole data section)."""


def finished_step(run_dir: Path, checkpoint: Path, old: RunConfig, new: RunConfig) -> int | None:
    """The step a completed run ended at when `new` (the run's config as this resume changes it) trains no step
    past it; None when steps are left, or when only a trainer can tell (the step count depends on the data)."""
    if (read_json(run_dir / TRAINER_FILE) or {}).get("status") != "completed":
        return None
    if not (run_dir / FINAL).is_dir():
        return None
    state = read_json(checkpoint / STATE_FILE) or {}
    step, total = state.get("step"), state.get("total_steps")
    if not isinstance(step, int) or not isinstance(total, int) or step < total:
        return None
    if _step_count(old) == _step_count(new):
        return step
    if new.training.max_steps and new.training.max_steps <= step:
        return step  # --max-steps at or below where the run stands: nothing left either
    return None


def _step_count(cfg: RunConfig) -> tuple:
    training = asdict(cfg.training)
    return tuple(training[key] for key in STEP_COUNT_KEYS), repr(asdict(cfg.data))
