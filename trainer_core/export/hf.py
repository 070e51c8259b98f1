"""The Hugging Face folder of an export: the merged model in safetensors (or, with --adapter, the LoRA adapter
naming its portable base), the tokenizer with its chat template, and a generation config whose stop tokens are
the tokenizer's. Nothing in it names this machine (checked by the tests)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from trainer_core.evaluate.inference import load_target_model, load_target_tokenizer, model_settings
from trainer_core.export.plan import ExportPlan
from trainer_core.train.model.builtin import portable_model_id

TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def load_merged(plan: ExportPlan):
    """(float32 model on the CPU with any adapter merged, tokenizer) of the plan's target."""
    settings = model_settings(plan.target, "fp32")
    tokenizer = load_target_tokenizer(plan.target, settings)
    model, _ = load_target_model(plan.target, settings, torch.device("cpu"))
    return model, tokenizer


def write_hf(plan: ExportPlan, model, tokenizer, folder: Path) -> list[str]:
    """Write the model (or the adapter) and tokenizer into `folder`; returns the files written."""
    if plan.adapter:
        for name in ADAPTER_FILES:
            shutil.copyfile(Path(plan.target.adapter) / name, folder / name)
        config = json.loads((folder / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = portable_model_id(plan.target.model)
        (folder / ADAPTER_FILES[0]).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    else:
        model = model.to(TORCH_DTYPES[plan.dtype])
        model.config.dtype = TORCH_DTYPES[plan.dtype]
        set_generation_stops(model, tokenizer)
        model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    _forget_local_names(folder)
    return sorted(p.name for p in folder.iterdir())


def set_generation_stops(model, tokenizer) -> None:
    """generation_config.json stops at the tokenizer's end token (and pads with its pad token)."""
    gen = model.generation_config
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id


def _forget_local_names(folder: Path) -> None:
    """Drop the load-time name (a cache folder of this machine) that some releases write into the JSON files."""
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and any(k in data for k in ("_name_or_path", "name_or_path")):
            data.pop("_name_or_path", None)
            data.pop("name_or_path", None)
            path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
