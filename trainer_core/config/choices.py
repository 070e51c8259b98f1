"""The allowed values of the config's choice fields, in one place, as `Literal` types.

The parser (`parse._coerce`) refuses any other value with "key: 'x' is not one of a, b", and every config
section's `check()` does the same for a config built in code (`schema.choice_problems`); the protocol, the TUI's
dialogs and the data sources take their choices from here too.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from trainer_core.quoting import quoted

Dtype = Literal["auto", "fp32", "bf16", "fp16"]
DataFormat = Literal["auto", "alpaca", "messages", "prompt_response", "qa", "text"]
TrainingType = Literal["sft", "cpt"]
Scheduler = Literal["cosine", "linear", "constant"]
Weighting = Literal["nlirg", "plain", "dft"]
Backend = Literal["none", "deepspeed"]
DeepSpeedOptimizer = Literal["torch", "deepspeed"]
Tracker = Literal["tensorboard", "wandb", "mlflow", "trackio"]
Quantization = Literal["none", "nf4", "fp4", "int8"]

DATA_FORMATS: tuple[str, ...] = typing.get_args(DataFormat)
DTYPES: tuple[str, ...] = typing.get_args(Dtype)


def not_one_of(key: str, value: Any, allowed: tuple[Any, ...]) -> str:
    """The one message for a value outside a choice field's `Literal`."""
    return f"{key}: {quoted(value)} is not one of {', '.join(map(str, allowed))}"
