"""`nlirg eval`: one model measured on a domain set, for general retention and for output quality (docs/design.md §12).

The result is one JSON-ready dict (`eval.json`): the metrics (docs/evaluate.md defines each), the counts they
rest on, the settings, and every generation with its reference, so a number can always be traced to answers.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from trainer_core.config import NlirgParams
from trainer_core.evaluate import metrics as m
from trainer_core.evaluate.eval_data import EvalItem, EvalSet, held_out_set, limit, read_domain_set, read_general_set
from trainer_core.evaluate.generate import Answer, GenerationRun, greedy_answers
from trainer_core.evaluate.inference import load_for_inference
from trainer_core.evaluate.losses import domain_losses, text_perplexity
from trainer_core.evaluate.options import EvalOptions
from trainer_core.evaluate.targets import Target
from trainer_core.live.events import read_events
from trainer_core.live.rundir import EVENTS_FILE, read_json

log = logging.getLogger("trainer_core")
Say = Callable[[str], None]


def pick_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def read_sets(target: Target, opts: EvalOptions) -> tuple[EvalSet, EvalSet]:
    if opts.domain:
        domain = read_domain_set(opts.domain, opts.system_prompt)
    else:  # a run's own held-out records (data.eval or its eval_fraction split, after data.exclude); else none
        domain = held_out_set(target.config) if target.config is not None else EvalSet()
    general = read_general_set(opts.general, opts.system_prompt) if opts.general else EvalSet()
    for found in (domain, general):
        found.items, found.texts = limit(found.items, opts.limit), limit(found.texts, opts.limit)
    return domain, general


@dataclass
class Scorer:
    """A loaded model and how to run it: the loss and generation passes of one evaluation."""

    model: Any
    tokenizer: Any
    dtype: torch.dtype
    max_length: int
    opts: EvalOptions
    say: Say

    def losses(self, domain: EvalSet, general: EvalSet, params: NlirgParams) -> tuple[dict, dict]:
        metrics: dict[str, Any] = {}
        counts: dict[str, Any] = {}
        bs = self.opts.batch_size
        if domain.items:
            totals = domain_losses(self.model, self.tokenizer, domain.items, params, self.max_length, bs, self.dtype)
            metrics.update(eval_loss=totals.loss, eval_weighted_loss=totals.weighted_loss)
            counts.update(domain_target_tokens=totals.tokens, domain_zone_counts=totals.zone_counts)
            self.say(f"domain eval loss {totals.loss:.4f} over {totals.tokens} target tokens")
        if general.texts:
            ppl, tokens = text_perplexity(self.model, self.tokenizer, general.texts, self.max_length, bs, self.dtype)
            metrics["general_ppl"] = ppl
            counts["general_tokens"] = tokens
            self.say(f"general perplexity {ppl:.3f} over {tokens} tokens")
        return metrics, counts

    def answers(self, name: str, items: list[EvalItem]) -> GenerationRun:
        self.say(f"generating {len(items)} {name} answers (batch {self.opts.batch_size}, "
                 f"up to {self.opts.max_new_tokens} tokens)")
        return greedy_answers(self.model, self.tokenizer, [i.prompt for i in items], self.opts.max_new_tokens,
                              self.opts.batch_size, self.max_length)


def evaluate(target: Target, opts: EvalOptions, say: Say = lambda _: None) -> dict[str, Any]:
    """Every metric the sets allow, for one target; the base model is loaded only for the perplexity ratio."""
    started = time.time()
    opts = opts.resolved(target)
    domain, general = read_sets(target, opts)
    settings = opts.settings()
    device = pick_device()
    model, tokenizer, dtype = load_for_inference(target, device)
    say(f"loaded {target.describe()} on {device} ({str(dtype).replace('torch.', '')})")
    scorer = Scorer(model, tokenizer, dtype, opts.max_length, opts, say)
    params = _weighted_params(target)
    metrics, counts = scorer.losses(domain, general, params)
    runs = {name: scorer.answers(name, found.items) for name, found in (("domain", domain), ("general", general))
            if found.items}
    labels = opts.labels or m.detect_labels([i.references for i in domain.items])
    for name, run in runs.items():
        metrics.update(_prefixed(name, (domain if name == "domain" else general).items, run.answers,
                                 labels if name == "domain" else None))
    metrics.update(_quality(domain.items + general.items, [a for run in runs.values() for a in run.answers]))
    del model, scorer
    _free(device)
    _retention(metrics, target, opts, general, settings["sets_digest"], device, say)
    metrics["loss_fluctuation"] = _loss_fluctuation(target)
    counts.update(domain_labels=labels or None, domain_accuracy_rule=m.label_rule(labels))
    counts.update(domain_items=len(domain.items), general_items=len(general.items), general_texts=len(general.texts),
                  json_items=sum(1 for i in domain.items + general.items if m.parse_json_answer(i.references[0])))
    settings.update(device=str(device), dtype=str(dtype).replace("torch.", ""), weighted_loss_params=asdict(params))
    return _result(target, opts, metrics, counts, settings, (domain, general), runs, labels) | {
        "wall_s": round(time.time() - started, 3)}


def _result(target: Target, opts: EvalOptions, metrics: dict, counts: dict, settings: dict,
            sets: tuple[EvalSet, EvalSet], runs: dict[str, GenerationRun], labels: list[str] | None
            ) -> dict[str, Any]:
    """eval.json's content (docs/evaluate.md)."""
    seconds = sum(run.seconds for run in runs.values())
    tokens = sum(run.tokens for run in runs.values())
    return {
        "target": {"spec": target.spec, "kind": target.kind, "model": target.model, "adapter": target.adapter,
                   "run_dir": str(target.run_dir) if target.run_dir else None},
        "base": opts.base, "metrics": metrics, "counts": counts,
        "sets": {"domain": sets[0].files, "general": sets[1].files}, "settings": settings,
        "generation": {"tokens": tokens, "seconds": round(seconds, 3),
                       "tokens_per_s": tokens / seconds if seconds else None},
        "generations": _generation_records(sets[0].items, sets[1].items, {k: r.answers for k, r in runs.items()},
                                           labels),
    }


def _weighted_params(target: Target) -> NlirgParams:
    """The run's NLIRG curve with weighting forced to nlirg: every arm's weighted eval loss uses one curve."""
    base = target.config.nlirg if target.config is not None else NlirgParams()
    return NlirgParams(**{**asdict(base), "enabled": True, "weighting": "nlirg"})


def _prefixed(name: str, items: list[EvalItem], answers: list[Answer], labels: list[str] | None) -> dict[str, Any]:
    scored = m.match_rates([a.text for a in answers], [i.references for i in items], labels)
    return {f"{name}_{key}": scored[key] for key in ("accuracy", "contains", "exact_match")}


def _quality(items: list[EvalItem], answers: list[Answer]) -> dict[str, Any]:
    """Repetition, diversity, JSON validity and truncation over every generation of the evaluation."""
    if not answers:
        return {}
    return m.quality_rates([a.text for a in answers], [i.references for i in items], [a.hit_limit for a in answers])


def _retention(metrics: dict[str, Any], target: Target, opts: EvalOptions, general: EvalSet, digest: str,
               device: torch.device, say: Say) -> None:
    """general_ppl of the base model and the ratio target / base (> 1: the target lost general fluency)."""
    if "general_ppl" not in metrics or not opts.base:
        return
    base_ppl = _cached_base_ppl(opts, general, digest)
    if base_ppl is None and opts.base == target.model and not target.adapter:
        base_ppl = metrics["general_ppl"]
    if base_ppl is None:
        from trainer_core.evaluate.targets import resolve_target

        base_target = resolve_target(opts.base)
        model, tokenizer, dtype = load_for_inference(base_target, device)
        base_ppl, _ = text_perplexity(model, tokenizer, general.texts, opts.max_length, opts.batch_size, dtype)
        del model
        _free(device)
        say(f"base {opts.base}: general perplexity {base_ppl:.3f}")
    metrics["base_general_ppl"] = base_ppl
    metrics["general_ppl_ratio"] = metrics["general_ppl"] / base_ppl


def _cached_base_ppl(opts: EvalOptions, general: EvalSet, digest: str) -> float | None:
    cached = read_json(opts.base_result) if opts.base_result else None
    if not cached or cached.get("target", {}).get("spec") != opts.base:
        return None
    settings = cached.get("settings", {})
    if cached.get("sets", {}).get("general") != general.files or any(
            settings.get(k) != getattr(opts, k) for k in ("limit", "max_length")) or (
            settings.get("sets_digest") != digest):
        return None  # other texts, or texts cut at another length: not comparable
    return cached.get("metrics", {}).get("general_ppl")


def _loss_fluctuation(target: Target) -> float | None:
    if target.run_dir is None:
        return None
    return m.loss_fluctuation(m.step_losses(read_events(target.run_dir / EVENTS_FILE)))


def _generation_records(domain: list[EvalItem], general: list[EvalItem], answers: dict[str, list[Answer]],
                        labels: list[str] | None) -> list[dict[str, Any]]:
    out = []
    for name, items in (("domain", domain), ("general", general)):
        for item, answer in zip(items, answers.get(name, []), strict=False):
            record = {"set": name, "where": item.where, "prompt": item.prompt[-1]["content"],
                      "references": item.references, "output": answer.text, "tokens": answer.tokens,
                      "hit_limit": answer.hit_limit, "exact": m.exact_match(answer.text, item.references),
                      "contains": m.contains_match(answer.text, item.references)}
            if name == "domain" and labels:
                record["label_right"] = m.label_match(answer.text, item.references, labels)
            out.append(record)
    return out


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
