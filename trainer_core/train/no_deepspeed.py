"""A trainer process without DeepSpeed never imports it.

transformers' `save_pretrained` unwraps the model with accelerate's `extract_model_from_parallel`, which imports
DeepSpeed whenever it is installed, only to add `DeepSpeedEngine` to an isinstance check: seconds at the first
save of every full fine-tune, and a "Setting accelerator to CPU" line. A single-device run holds no DeepSpeed
engine, so while it trains accelerate is told DeepSpeed is not there (its one other use in that function is the
same check); a DeepSpeed backend puts the real answer back (tests run both kinds in one process).
"""

from __future__ import annotations

import sys
from typing import Any

_REAL: dict[str, Any] = {}


def skip_deepspeed_unwrap() -> None:
    """For this process: accelerate's unwrapping no longer imports DeepSpeed (no-op once DeepSpeed is loaded)."""
    other = _accelerate_other()
    if other is None or "deepspeed" in sys.modules or "check" in _REAL:
        return
    _REAL["check"] = other.is_deepspeed_available
    other.is_deepspeed_available = lambda: False


def allow_deepspeed_unwrap() -> None:
    """Undo `skip_deepspeed_unwrap` (a DeepSpeed run)."""
    other = _accelerate_other()
    if other is not None and "check" in _REAL:
        other.is_deepspeed_available = _REAL.pop("check")


def _accelerate_other():
    try:
        from accelerate.utils import other
    except ImportError:  # no accelerate: transformers unwraps by itself, without DeepSpeed
        return None
    return other if hasattr(other, "is_deepspeed_available") else None
