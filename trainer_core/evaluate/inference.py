"""Loading a model to run it, not to train it: `nlirg eval`, `nlirg score` and the benches share this loader.

It takes anything `targets.resolve_target` accepts: a run (its final/) or a checkpoint, where a LoRA adapter is
merged into its base; a model or adapter folder; a hub id; a builtin. The weights load straight in the compute
dtype (bf16 on a GPU that has it) and then move to the device: no float32 copy first, as the trainer's loader
keeps for its master weights. The tokenizer loads on its own, so a caller can check its data before any
weights are read. A load that fails (a missing or corrupt weights file, an adapter for another model) is one
line, ModelLoadError, never a traceback.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError

from trainer_core.config import ModelConfig
from trainer_core.evaluate.targets import Target
from trainer_core.train.model.load import ModelLoadError, compute_dtype, load_tokenizer, resolve

LOAD_ERRORS = (OSError, ValueError, RuntimeError, SafetensorError, pickle.UnpicklingError)
"""What transformers and peft raise for weights that cannot be read (missing, cut short, another shape)."""


def model_settings(target: Target, dtype: str | None = None) -> ModelConfig:
    """The target's model settings (its run's, else the defaults), with the compute precision `dtype` when given
    (auto, fp32, bf16, fp16)."""
    cfg = target.config.model if target.config is not None else ModelConfig()
    return replace(cfg, dtype=dtype) if dtype else cfg


def load_target_tokenizer(target: Target, cfg: ModelConfig):
    # A LoRA run's final/ holds the tokenizer beside the adapter, without a model's config.json: used as it is.
    path = target.tokenizer if Path(target.tokenizer).is_dir() else resolve(ModelConfig(path=target.tokenizer))
    return load_tokenizer(path, cfg)


def load_target_model(target: Target, cfg: ModelConfig, device: torch.device):
    """(model in eval mode on `device`, with any adapter merged; its compute dtype)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dtype = compute_dtype(cfg, device)
    path = resolve(ModelConfig(path=target.model))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, attn_implementation=cfg.attn_implementation, trust_remote_code=cfg.trust_remote_code)
        if target.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, target.adapter).merge_and_unload()
    except LOAD_ERRORS as exc:
        text = str(exc).strip().splitlines()
        raise ModelLoadError(f"cannot load {target.describe()}: {text[0] if text else type(exc).__name__}") from exc
    return model.to(device).eval(), dtype


def load_for_inference(target: Target, device: torch.device, dtype: str | None = None):
    """(model, tokenizer, compute dtype) of `target`; `dtype` overrides the run's `model.dtype`."""
    cfg = model_settings(target, dtype)
    tokenizer = load_target_tokenizer(target, cfg)
    model, compute = load_target_model(target, cfg, device)
    return model, tokenizer, compute
