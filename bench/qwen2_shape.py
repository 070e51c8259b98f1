"""A random model of Qwen2's shape where the LM head decides the memory: built locally, never downloaded.

Qwen-class models have a 151,936-token vocabulary; with a small body (hidden 512, 2 layers) the LM head and
its cross-entropy dominate a step's memory and time, which is what `bench.memory` and the fused-head tests
measure. Shared by the benches and the tests so both speak of the same model.
"""

from __future__ import annotations

import torch

QWEN2_VOCAB = 151_936


def qwen2_shaped(vocab: int = QWEN2_VOCAB, hidden: int = 512, layers: int = 2, tied: bool = True,
                 seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A randomly initialised Qwen2ForCausalLM (train mode) of this shape; same seed, same weights."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    cfg = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                      num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 256),
                      tie_word_embeddings=tied, max_position_embeddings=4096)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg, dtype=dtype).train()


def one_row(length: int, targets: int, vocab: int = QWEN2_VOCAB, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) of one (1, length) row whose last `targets` positions are trained."""
    gen = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab, (1, length), generator=gen)
    labels = input_ids.clone()
    labels[:, : length - targets] = -100
    return input_ids, labels
