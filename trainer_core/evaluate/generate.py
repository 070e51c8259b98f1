"""Greedy answers to chat prompts: the tokenizer's chat template, batches of similar length, left padding and
the KV cache (transformers' `generate`), stopping at the end-of-turn token or a bounded length.

Prompts are sorted by length before batching, so a batch pads little; the answers come back in input order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer_core.train.prompts import encode_prompt, stop_token_ids


@dataclass
class Answer:
    text: str
    tokens: int
    """Generated tokens, the stop token included."""
    hit_limit: bool
    """Stopped by max_new_tokens rather than by a stop token (a truncated or looping answer)."""


@dataclass
class GenerationRun:
    answers: list[Answer]
    seconds: float

    @property
    def tokens(self) -> int:
        return sum(a.tokens for a in self.answers)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), padded on the left so every row's next token is at the same position."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids, mask


def _answers(tokenizer, new_tokens: torch.Tensor, stops: set[int]) -> list[Answer]:
    out = []
    for row in new_tokens.tolist():  # host transfer: once per batch, after generation
        end = next((i for i, t in enumerate(row) if t in stops), None)
        kept = row[:end] if end is not None else row
        text = tokenizer.decode(kept, skip_special_tokens=True).strip()
        if end is None:  # cut by the length bound, maybe inside a multi-byte character: drop its remains
            text = text.rstrip("\ufffd").rstrip()
        out.append(Answer(text, end + 1 if end is not None else len(row), end is None))
    return out


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: Sequence[Sequence[dict[str, str]]], max_new_tokens: int = 128,
                   batch_size: int = 8, max_prompt_tokens: int = 1024, synced_gpus: bool = False) -> GenerationRun:
    """Greedy answers to `prompts` (each a list of chat messages), in input order.

    `synced_gpus` keeps every DeepSpeed rank stepping together (ZeRO-3 gathers weights in each forward).
    """
    from transformers import GenerationConfig

    started = time.perf_counter()
    encoded = [encode_prompt(tokenizer, p, max_prompt_tokens) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))  # longest first: memory trouble shows early
    stops = stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                              pad_token_id=pad_id, use_cache=True)
    device = next(model.parameters()).device
    answers: list[Answer | None] = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        ids, mask = left_pad([encoded[i] for i in chosen], pad_id)
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config,
                             synced_gpus=synced_gpus)
        for i, answer in zip(chosen, _answers(tokenizer, out[:, ids.shape[1]:], set(stops)), strict=True):
            answers[i] = answer
    return GenerationRun([a for a in answers if a is not None], time.perf_counter() - started)
