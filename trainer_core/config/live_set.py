"""What `set` changes on a running trainer, checked by the config file's own rules: one validator for both.

The live `set` path (`trainer_core.live.control`) parses each value as the config file's are (`parse._coerce`,
which refuses NaN and infinities through `schema.non_finite`), applies the change to a copy of the config section
it belongs to and asks that section's `check()`. `lr_scale` is the one setting with no config field; its range
is kept here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trainer_core.config.schema import NlirgParams, RunConfig, TelemetryConfig, TrainingConfig, non_finite

LR_SCALE_MAX = 100.0
"""The largest live `lr_scale`: a run that needs more wants a higher `training.lr` (and a restart)."""


@dataclass
class LiveSet:
    """One checked `set`: the NLIRG parameters after it and the other settings it changes (None: unchanged).
    Its fields besides `nlirg` are `protocol.SETTABLE`'s other keys."""

    nlirg: NlirgParams
    lr_scale: float | None = None
    """No config field: the trainer multiplies its LR schedule by it."""
    log_every: int | None = None
    eval_every: int | None = None
    save_every: int | None = None
    flag_threshold: float | None = None

    def apply(self, cfg: RunConfig) -> None:
        """Write the change into the run's config in place (the loop and the flagged tracker read these sections;
        config.yaml is saved from them)."""
        cfg.nlirg = self.nlirg
        training = cfg.training
        if self.log_every is not None:
            training.log_every = self.log_every
        if self.eval_every is not None:
            training.eval_every = self.eval_every
        if self.save_every is not None:
            training.save_every = self.save_every
        if self.flag_threshold is not None:
            cfg.telemetry.flag_threshold = self.flag_threshold


def non_finite_problems(section: Any, prefix: str) -> list[str]:
    """Every float field of a config section that holds NaN or an infinity (`schema.non_finite`, the one
    finiteness check), led by its key path: for values that did not come through the parser (a TUI dialog)."""
    found = (non_finite(f"{prefix}.{f.name}", getattr(section, f.name)) for f in dataclasses.fields(section))
    return [problem for problem in found if problem is not None]


def lr_scale_problems(value: float) -> list[str]:
    problem = non_finite("lr_scale", value)
    if problem is not None:
        return [problem]
    if value < 0:
        return [f"lr_scale: {value} must be >= 0"]
    if value > LR_SCALE_MAX:
        return [f"lr_scale: {value} is over {LR_SCALE_MAX:g}; for a higher LR, raise training.lr and resume"]
    return []


def live_set_problems(nlirg: NlirgParams, training: dict[str, Any], telemetry: dict[str, Any]) -> list[str]:
    """Why the NLIRG parameters after a `set`, or the training/telemetry values it changes, would fail the
    config validator (empty when they pass). Values are already of their field's type."""
    out = non_finite_problems(nlirg, "nlirg") or nlirg.check()
    for section, changes, prefix in ((TrainingConfig(), training, "training"),
                                     (TelemetryConfig(), telemetry, "telemetry")):
        changed = dataclasses.replace(section, **changes)  # the defaults pass: what fails is the change
        out += non_finite_problems(changed, prefix) or changed.check()
    return out
