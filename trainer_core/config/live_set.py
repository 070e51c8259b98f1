"""What `set` changes on a running trainer, checked by the config file's own rules: one validator for both.

The live `set` path (`trainer_core.live.control`) parses each value as the config file's are (`parse._coerce`,
which refuses NaN and infinities through `schema.non_finite`), applies the change to a copy of the config section
it belongs to and asks that section's `check()`. `lr_scale` is the one setting with no config field; its range
is kept here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trainer_core.config.schema import NlirgParams, TelemetryConfig, TrainingConfig, non_finite

LR_SCALE_MAX = 100.0
"""The largest live `lr_scale`: a run that needs more wants a higher `training.lr` (and a restart)."""


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
