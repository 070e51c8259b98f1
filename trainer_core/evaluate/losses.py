"""Eval loss and perplexity with the trainer's own loss step (`train.loss.step.loss_step`) and telemetry reduction,
so `nlirg eval` scores a token exactly as training and `training.eval_every` do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainer_core.config import NlirgParams
from trainer_core.data.records import Record
from trainer_core.evaluate.eval_data import EvalItem, TextItem
from trainer_core.train.data.batch import Sample, build_samples, collate
from trainer_core.train.loss.step import loss_step
from trainer_core.train.telemetry.step_stats import IntervalStats, Telemetry

PLAIN = NlirgParams(weighting="plain")


@dataclass
class LossTotals:
    loss: float
    """Mean cross-entropy over every target token of the set."""
    weighted_loss: float
    """NLIRG reduction of the same tokens: sum(w * L) / tokens with w > 0."""
    tokens: int
    zone_counts: list[int]


def _records(items: list[EvalItem]) -> list[Record]:
    return [Record(source=item.source, line=item.line, messages=item.messages) for item in items]


@torch.no_grad()
def sample_losses(model, samples: list[Sample], pad_id: int, params: NlirgParams, batch_size: int,
                  dtype: torch.dtype = torch.float32) -> LossTotals:
    """Reduce every target token of `samples` on the device; one host sync at the end."""
    device = next(model.parameters()).device
    tel = Telemetry(device)
    ordered = sorted(samples, key=lambda s: len(s.input_ids))  # similar lengths per batch: little padding
    for start in range(0, len(ordered), batch_size):
        batch = collate(ordered[start:start + batch_size], pad_id).to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = loss_step(model, batch, params)
        tel.add(out.tokens.losses, out.weights, out.tokens.rows, batch.sample_ids, params, keep_tokens=False)
    stats: IntervalStats = tel.sync()  # host sync: once per evaluated set
    return LossTotals(stats.loss, stats.weighted_loss, stats.target_tokens, stats.zone_counts)


def domain_losses(model, tokenizer, items: list[EvalItem], params: NlirgParams, max_length: int, batch_size: int,
                  dtype: torch.dtype = torch.float32) -> LossTotals:
    """Target-token cross-entropy of the whole conversations (their answers), plain and NLIRG-weighted."""
    samples, _ = build_samples(tokenizer, _records(items), "sft", max_length)
    return sample_losses(model, samples, tokenizer.pad_token_id, params, batch_size, dtype)


def text_perplexity(model, tokenizer, texts: list[TextItem], max_length: int, batch_size: int,
                    dtype: torch.dtype = torch.float32) -> tuple[float, int]:
    """exp(mean cross-entropy of every next token of the texts, EOS included); (perplexity, tokens)."""
    records = [Record(source=t.source, line=t.line, text=t.text) for t in texts]
    samples, _ = build_samples(tokenizer, records, "cpt", max_length)
    totals = sample_losses(model, samples, tokenizer.pad_token_id, PLAIN, batch_size, dtype)
    return math.exp(totals.loss), totals.tokens
