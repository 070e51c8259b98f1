"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_path() -> str:
    from trainer_core.train.builtin import resolve_model_path

    return resolve_model_path("builtin:tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_path)


@pytest.fixture(scope="session")
def tiny_model_fn(tiny_path):
    """A function returning a fresh float32 tiny model (eval mode)."""
    import torch
    from transformers import AutoModelForCausalLM

    def make():
        m = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
        return m.eval()

    return make
