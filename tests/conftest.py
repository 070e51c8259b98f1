"""Fixtures shared by the whole suite."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tokenized corpora are cached in a folder of this session only (subprocess trainers inherit it): a test never
# reads a cache entry left by another session or writes into the user's own cache.
_DATA_CACHE = tempfile.mkdtemp(prefix="nlirg-test-data-")
os.environ["NLIRG_DATA_CACHE"] = _DATA_CACHE
atexit.register(shutil.rmtree, _DATA_CACHE, True)


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
