"""QLoRA: the frozen base held in 4 or 8 bits by bitsandbytes, a float32 LoRA adapter trained on top.

`load_quantized` builds the base straight into its quantized form on the device (never whole in 16 bits) and
prepares it for k-bit training (frozen, gradient checkpointing as configured, input grads through apply_lora);
`merge_into_base` is the export: a quantized base cannot take merged weights, so the adapter is merged into the
base loaded afresh in the compute precision. The config's checks (`config.quantization`) ran before either.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from trainer_core.config import ModelConfig, RunConfig
from trainer_core.config.quantization import FOUR_BIT, describe

log = logging.getLogger("trainer_core")


def bnb_config(cfg: ModelConfig, dtype: torch.dtype):
    """The transformers `BitsAndBytesConfig` of `model.quantization`, computing in `dtype`."""
    from transformers import BitsAndBytesConfig

    if cfg.quantization in FOUR_BIT:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.quantization,
                                  bnb_4bit_use_double_quant=cfg.double_quant, bnb_4bit_compute_dtype=dtype,
                                  bnb_4bit_quant_storage=torch.uint8)
    return BitsAndBytesConfig(load_in_8bit=True)


def load_quantized(path: str, cfg: ModelConfig, dtype: torch.dtype, device: torch.device):
    """The base, quantized on `device` and prepared for k-bit training: every weight frozen, gradient
    checkpointing as configured (apply_lora then makes the inputs require grad).

    Unlike peft's `prepare_model_for_kbit_training`, the embeddings, norms and LM head stay in the compute dtype:
    its float32 upcast costs 4.4 GB more on a Qwen2-7B (152k vocabulary, untied) for no gain under bf16."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=bnb_config(cfg, dtype), dtype=dtype, device_map={"": device},
        attn_implementation=cfg.attn_implementation, trust_remote_code=cfg.trust_remote_code)
    for param in model.parameters():
        param.requires_grad_(False)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    log.info("base weights quantized to %s by bitsandbytes, computing in %s", describe(cfg.quantization),
             str(dtype).replace("torch.", ""))
    return model


def merge_into_base(cfg: RunConfig, adapter_dir: Path, dtype: torch.dtype):
    """The adapter in `adapter_dir` merged into the base loaded afresh, unquantized, in `dtype`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer_core.train.model.builtin import resolve_model_path  # load imports this module: not load.resolve

    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(cfg.model.path), dtype=dtype,
                                                trust_remote_code=cfg.model.trust_remote_code)
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def merge_note(cfg: RunConfig, dtype: torch.dtype) -> str:
    """The run log's line for final/merged of a QLoRA run."""
    return (f"merging the adapter into the base loaded in {str(dtype).replace('torch.', '')} (not "
            f"{describe(cfg.model.quantization)}): a quantized base cannot hold merged weights")
