"""What a quantized base (QLoRA, `model.quantization`) needs of the rest of the config: checked before any load.

Torch-free: only asks whether bitsandbytes is installed, never imports it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

FOUR_BIT = ("nf4", "fp4")
BITS = {"none": 16, "nf4": 4, "fp4": 4, "int8": 8}
EXTRA = "qlora"
"""The optional dependency group that installs bitsandbytes (`pip install 'nlirg-workbench[qlora]'`)."""


def describe(quantization: str) -> str:
    """How the Memory pane and the log name a base: `nf4 (4-bit)`, `int8 (8-bit)`, `none`."""
    return "none" if quantization == "none" else f"{quantization} ({BITS[quantization]}-bit)"


def bitsandbytes_installed() -> bool:
    try:
        return importlib.util.find_spec("bitsandbytes") is not None
    except ValueError:  # blocked in sys.modules (None): as good as missing
        return False


def quantization_problems(cfg: Any) -> list[str]:
    """One line per reason the RunConfig's quantization cannot run (empty for `none`). Typed loosely: schema
    imports this module, not the other way round."""
    q = cfg.model.quantization
    if q == "none":
        return []
    out = []
    if not cfg.lora.enabled:
        out.append(f"model.quantization: {q} trains a LoRA adapter on a frozen quantized base; full fine-tuning of a "
                   "quantized base is not possible: set lora.enabled true or model.quantization none")
    if cfg.distributed.backend == "deepspeed":
        stage = cfg.distributed.zero_stage
        out.append(f"model.quantization: {q} with DeepSpeed (ZeRO-{stage}) is not supported: ZeRO-3 cannot shard "
                   "bitsandbytes weights and ZeRO-1/2 are untested with them; train the quantized base with "
                   "distributed.backend none, or use model.quantization none with DeepSpeed")
    if not bitsandbytes_installed():
        out.append(f"model.quantization: {q} needs bitsandbytes, which is not installed: pip install "
                   f"'nlirg-workbench[{EXTRA}]' (or ./run, which installs it)")
    return out
