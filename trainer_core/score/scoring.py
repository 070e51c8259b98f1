"""The scoring model's passes: the tokenizer and model `nlirg score` loads (any target `nlirg eval` takes), and
every sample's loss and entropy signals in batches of similar length. Used by one process (`run`), by each
process of --num-procs (`worker`) and by the benches."""

from __future__ import annotations

import torch

from trainer_core.evaluate.inference import load_target_model, load_target_tokenizer, model_settings
from trainer_core.evaluate.targets import resolve_target
from trainer_core.score.encode import ScoreItem
from trainer_core.score.forward import RowSignals, token_signals
from trainer_core.score.options import ScoreOptions
from trainer_core.train.data.batch import Sample, collate

Signals = dict[int, RowSignals]
SCORE_OFFER = "score with its newest checkpoint: --model {}"
"""The hint for a run that has no final model yet (still training, or stopped before the end)."""



def scoring_tokenizer(opts: ScoreOptions):
    target = resolve_target(opts.model, offer=SCORE_OFFER)
    return load_target_tokenizer(target, model_settings(target, opts.dtype))


def scoring_model(opts: ScoreOptions, device: torch.device):
    """(model in eval mode, compute dtype): any model `nlirg eval` takes (a LoRA run's final/ too, its adapter
    merged), loaded in the compute dtype; no gradient anywhere."""
    target = resolve_target(opts.model, offer=SCORE_OFFER)
    return load_target_model(target, model_settings(target, opts.dtype), device)


def load_scorer(opts: ScoreOptions, device: torch.device):
    """(tokenizer, model, compute dtype) at once, for the benches."""
    return scoring_tokenizer(opts), *scoring_model(opts, device)


def score_samples(model, samples: list[Sample], pad_id: int, batch_size: int, with_entropy: bool,
                  dtype: torch.dtype, advance=None) -> Signals:
    """Signals of every sample by its sample_id, in batches of similar length (longest first: a memory
    problem shows at once)."""
    device = next(model.parameters()).device
    todo = sorted((s for s in samples if s.target_count), key=lambda s: -len(s.input_ids))
    out: Signals = {}
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        batch = collate(chunk, pad_id).to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            rows = token_signals(model, batch, with_entropy)
        for sample, sig in zip(chunk, rows, strict=True):
            out[sample.sample_id] = sig
        if advance is not None:
            advance(len(chunk), sum(len(s.input_ids) for s in chunk))
    return out


def score_items(model, items: list[ScoreItem], pad_id: int, opts: ScoreOptions, dtype: torch.dtype,
                advance=None) -> tuple[Signals, Signals]:
    """(signals, bare signals) of the items; the bare pass (ifd only) needs no entropy."""
    signals = score_samples(model, [it.sample() for it in items], pad_id, opts.batch_size, True, dtype, advance)
    bare = [it.bare for it in items if it.bare is not None]
    return signals, score_samples(model, bare, pad_id, opts.batch_size, False, dtype) if bare else {}


def device_for(rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")
