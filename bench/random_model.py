"""Model folders of a real architecture's shape with random weights, written on the spot (nothing downloads)."""

from __future__ import annotations

from pathlib import Path


def write_random_model(folder: Path, config: dict, dtype: str = "float32") -> Path:
    """`folder` holding a from_pretrained model of `config`'s shape (seeded random weights) and its config.json."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(config["model_type"], **fields))
    model.to(getattr(torch, dtype)).save_pretrained(folder)
    return folder
