"""Generation metrics during training (`eval.generate_every`): the model answers held-out prompts greedily at
the eval point and the scores stream as an `eval` event with `kind: "generation"` (and to the trackers of
telemetry.report_to).

Every rank generates the same answers (DeepSpeed ZeRO-3 needs all ranks in every forward); rank 0 alone has a
real event log and trackers, so the others' events go nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from trainer_core.config import ConfigError, RunConfig
from trainer_core.evaluate.eval_data import EvalItem, held_out_items, limit
from trainer_core.evaluate.generate import GenerationRun, greedy_answers
from trainer_core.evaluate.metrics import GENERATION_EVENT_KEYS as METRIC_KEYS
from trainer_core.evaluate.metrics import detect_labels, generation_metrics
from trainer_core.live.protocol import GenerationEvalEvent

EXAMPLES = 3
"""Answers carried in each event, so a client can show what the numbers are about."""
EXAMPLE_CHARS = 400


@dataclass
class GenerationProbe:
    items: list[EvalItem]
    every: int
    max_new_tokens: int
    batch_size: int
    max_length: int
    labels: list[str] = field(default_factory=list)
    """eval.labels (empty: detected from the references, `metrics.detect_labels`)."""

    @classmethod
    def build(cls, cfg: RunConfig) -> GenerationProbe | None:
        if not cfg.eval.generate_every:
            return None
        items = limit(held_out_items(cfg), cfg.eval.max_samples)
        if not items:
            raise ConfigError(["eval.generate_every: no held-out prompts to answer; set eval.domain, data.eval or "
                               "data.eval_fraction"], "config")
        return cls(items, cfg.eval.generate_every, cfg.eval.max_new_tokens, cfg.eval.batch_size,
                   cfg.data.max_length, list(cfg.eval.labels))

    def due(self, step: int, total_steps: int) -> bool:
        return step % self.every == 0 or step == total_steps

    def run(self, trainer: Any) -> GenerationEvalEvent:
        """Answer, score, emit; the model is back in training mode afterwards."""
        model = getattr(trainer.model, "module", trainer.model)  # a DeepSpeed engine holds the model
        model.eval()
        try:
            with torch.autocast(trainer.device.type, dtype=trainer.dtype, enabled=trainer.dtype != torch.float32):
                run = greedy_answers(model, trainer.tokenizer, [i.prompt for i in self.items], self.max_new_tokens,
                                     self.batch_size, self.max_length, synced_gpus=trainer.world_size > 1)
        finally:
            model.train()
        event = self.event(trainer.step, trainer.epoch_progress, run)
        trainer.events.emit("eval", **event)
        if trainer.trackers is not None:
            trainer.trackers.log({f"eval/{key}": event[key] for key in METRIC_KEYS if event[key] is not None},
                                 trainer.step)
        return event

    def event(self, step: int, epoch: float, run: GenerationRun) -> GenerationEvalEvent:
        references = [i.references for i in self.items]
        scored = generation_metrics([a.text for a in run.answers], references, [a.hit_limit for a in run.answers],
                                    self.labels or detect_labels(references))
        examples = [{"where": i.where, "prompt": i.prompt[-1]["content"][:EXAMPLE_CHARS],
                     "output": a.text[:EXAMPLE_CHARS], "reference": i.references[0][:EXAMPLE_CHARS]}
                    for i, a in list(zip(self.items, run.answers, strict=True))[:EXAMPLES]]
        renamed = {"domain_accuracy": "accuracy", "domain_exact_match": "exact_match"}
        return {"kind": "generation", "step": step, "epoch": round(epoch, 4),
                **{key: scored[renamed.get(key, key)] for key in METRIC_KEYS},
                "items": scored["items"], "tokens_per_s": run.tokens_per_s, "examples": examples}
