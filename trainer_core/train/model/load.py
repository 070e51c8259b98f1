"""Model and tokenizer loading: builtin, local folder or hub id; dtype; LoRA via peft; checkpointing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from trainer_core.config import LoraConfig, ModelConfig
from trainer_core.config.model_source import ModelLoadError, check_model_source
from trainer_core.config.quantization import describe
from trainer_core.data.records import DataError
from trainer_core.train.model.builtin import portable_model_id, resolve_model_path

log = logging.getLogger("trainer_core")


def compute_dtype(cfg: ModelConfig, device: torch.device) -> torch.dtype:
    if cfg.dtype == "fp32":
        return torch.float32
    if cfg.dtype == "bf16":
        return torch.bfloat16
    if cfg.dtype == "fp16":
        return torch.float16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def base_weights(cfg: ModelConfig, lora: LoraConfig, dtype: torch.dtype) -> str:
    """`nf4 (4-bit)` for a quantized base, else the dtype its weights are held in (float32 for full fine-tuning)."""
    if cfg.quantization != "none":
        return describe(cfg.quantization)
    return str(dtype if lora.enabled else torch.float32).replace("torch.", "")


def load_tokenizer(path: str, cfg: ModelConfig):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported as one user-facing line
        raise ModelLoadError(f"model.path: cannot load a tokenizer from '{cfg.path}': {_first_line(exc)}") from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, cfg: ModelConfig, lora: LoraConfig, dtype: torch.dtype, device: torch.device):
    """The model, on `device`, with LoRA applied when enabled.

    Full fine-tuning keeps float32 master weights and runs the forward under autocast; LoRA loads the
    frozen base in the compute dtype (it is never updated) and keeps the adapter in float32.
    """
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if cfg.quantization != "none":  # QLoRA: config.quantization checked lora.enabled and bitsandbytes already
        from trainer_core.train.model.quantized import load_quantized

        try:
            model = load_quantized(path, cfg, dtype, device)
        except (ImportError, ValueError, OSError) as exc:
            raise ModelLoadError(f"model.quantization: cannot load '{cfg.path}' as {cfg.quantization}: "
                                 f"{_first_line(exc)}") from exc
        return apply_lora(model, lora)
    load_dtype = dtype if lora.enabled else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=load_dtype, attn_implementation=cfg.attn_implementation,
            trust_remote_code=cfg.trust_remote_code,
        )
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"model.path: cannot load '{cfg.path}': {_first_line(exc)}") from exc
    model.to(device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if lora.enabled:
        model = apply_lora(model, lora)
    return model


def apply_lora(model, lora: LoraConfig):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = lora.target_modules
    target: str | list[str] = "all-linear" if targets == ["all-linear"] else targets
    peft_cfg = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                              target_modules=target, task_type="CAUSAL_LM")
    try:
        model = get_peft_model(model, peft_cfg)
    except ValueError as exc:
        raise DataError(f"lora.target_modules: {_first_line(exc)}") from exc
    if getattr(model.config, "use_cache", None) is not None:
        model.config.use_cache = False
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()  # gradient checkpointing needs grad-requiring inputs
    return model


def save_options(model) -> dict[str, bool]:
    """`save_pretrained` options for a model: a LoRA model says whether its embedding layers are saved.

    peft's default ("auto") decides that at every save by asking the Hub whether the base's config.json exists
    there (or re-reading it from disk), to detect a resized vocabulary; the trainer never resizes it, so only a
    LoRA that targets the embeddings saves them, and no save reaches for the network (a hub-id base, online)."""
    peft_config = getattr(model, "peft_config", None)
    if not peft_config:
        return {}
    from peft.tuners.lora import Embedding

    return {"save_embedding_layers": any(isinstance(m, Embedding) for m in model.modules())}


def name_portable_base(adapter_dir: Path, spec: str) -> None:
    """Make a saved adapter name its base as another machine finds it (`portable_model_id`), not the local cache
    folder it was trained from. Only final/ gets this: during training peft keeps the local path, so its save-time
    checks of the base never reach for the network."""
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = portable_model_id(spec)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def resolve(cfg: ModelConfig) -> str:
    check_model_source(cfg.path)  # a missing config.json or an unreachable hub id: one line, before any loading
    try:
        return resolve_model_path(cfg.path)
    except ValueError as exc:
        raise ModelLoadError(f"model.path: {_first_line(exc)}") from exc


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters; a ZeRO-3 shard counts with its full size (`ds_numel`)."""
    sizes = [(getattr(p, "ds_numel", p.numel()), p.requires_grad) for p in model.parameters()]
    return sum(n for n, trains in sizes if trains), sum(n for n, _ in sizes)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
