"""`nlirg score`: read records, encode them as the trainer would, score them in one batched pass (split over
processes with --num-procs), rank, write the score file and its summary."""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import IO, Any

import torch

from trainer_core.data.records import read_records
from trainer_core.evaluate.inference import load_target_model, load_target_tokenizer, model_settings
from trainer_core.evaluate.targets import resolve_target
from trainer_core.score.encode import ScoreItem, encode_records
from trainer_core.score.forward import RowSignals, token_signals
from trainer_core.score.options import ScoreOptions
from trainer_core.score.output import make_summary, print_summary, rank_rows, write_rows, write_summary
from trainer_core.score.progress import ScoreProgress
from trainer_core.score.report import build_row
from trainer_core.train.data.batch import Sample, collate
from trainer_core.train.data.token_text import token_texts

Signals = dict[int, RowSignals]


def scoring_tokenizer(opts: ScoreOptions):
    target = resolve_target(opts.model)
    return load_target_tokenizer(target, model_settings(target, opts.dtype))


def scoring_model(opts: ScoreOptions, device: torch.device):
    """(model in eval mode, compute dtype): any model `nlirg eval` takes (a LoRA run's final/ too, its adapter
    merged), loaded in the compute dtype; no gradient anywhere."""
    target = resolve_target(opts.model)
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


def run(opts: ScoreOptions, stream: IO[str] | None = None, progress_stream: IO[str] | None = None,
        ) -> dict[str, Any]:
    """Score, write OUT and OUT.summary.json, print the summary (stdout; progress on stderr); return the summary."""
    started = time.time()
    records = read_records(opts.data, opts.format, opts.system_prompt, allow_empty_answer=True)
    tokenizer = scoring_tokenizer(opts)  # the data is encoded before any weights are read: a bad record shows at once
    items = encode_records(tokenizer, records, opts.max_length, with_bare=opts.mode == "ifd")
    progress = ScoreProgress(len(items), sum(len(it.input_ids) for it in items), progress_stream)
    forward_started = time.time()
    if opts.num_procs == 1:
        model, dtype = scoring_model(opts, _device(0))
        signals, bare = score_items(model, items, tokenizer.pad_token_id, opts, dtype, progress.advance)
    else:
        from trainer_core.score.parallel import score_in_processes

        signals, bare = score_in_processes(opts, items, tokenizer.pad_token_id, progress.advance)
    forward_s = time.time() - forward_started
    progress.close()
    rows = rank_rows([build_row(it, signals.get(it.index), bare.get(it.index), opts.mode,
                                token_texts(tokenizer, it.input_ids)) for it in items])
    kept = rows[:opts.top] if opts.top else rows
    write_rows(opts.out, kept)
    meta = {"mode": opts.mode, "model": opts.model, "data": list(opts.data), "format": opts.format,
            "max_length": opts.max_length, "out": str(opts.out.resolve()), "num_procs": opts.num_procs,
            "batch_size": opts.batch_size, "wall_s": round(time.time() - started, 3),
            "tokens_per_s": round(progress.tokens / max(forward_s, 1e-9), 1)}
    summary = make_summary(rows, len(kept), meta)
    write_summary(opts.out, summary)
    print_summary(summary, rows, stream or sys.stdout)
    return summary


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


def worker_main(opts: ScoreOptions, items: list[ScoreItem], pad_id: int, rank: int, queue) -> None:
    """One process of --num-procs: its own device (CPU threads shared out), its share of the items."""
    try:
        if not torch.cuda.is_available():
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // opts.num_procs))
        model, dtype = scoring_model(opts, _device(rank))
        signals, bare = score_items(model, items, pad_id, opts, dtype,
                                    lambda n, t: queue.put(("progress", rank, n, t)))
        queue.put(("done", rank, signals, bare))
    except BaseException:  # noqa: BLE001 - handed to the parent, which raises it with this traceback
        queue.put(("error", rank, traceback.format_exc()))
        raise SystemExit(1) from None
