"""`nlirg score`: read records, encode them as the trainer would, score them in one batched pass (split over
processes with --num-procs), rank, write the score file and its summary."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from trainer_core.data.files import read_records
from trainer_core.score.encode import encode_records
from trainer_core.score.options import ScoreOptions
from trainer_core.score.output import make_summary, print_summary, rank_rows, write_rows, write_summary
from trainer_core.score.parallel import score_in_processes
from trainer_core.score.progress import ScoreProgress
from trainer_core.score.report import build_row
from trainer_core.score.scoring import device_for, score_items, scoring_model, scoring_tokenizer
from trainer_core.train.data.token_text import token_texts


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
        model, dtype = scoring_model(opts, device_for(0))
        signals, bare = score_items(model, items, tokenizer.pad_token_id, opts, dtype, progress.advance)
    else:
        signals, bare = score_in_processes(opts, items, tokenizer.pad_token_id, progress.advance)
    forward_s = time.time() - forward_started
    progress.close()
    special = frozenset(tokenizer.all_special_ids)  # structural tokens leave the statistics (report._content)
    rows = rank_rows([build_row(it, signals.get(it.index), bare.get(it.index), opts.mode,
                                token_texts(tokenizer, it.input_ids), special) for it in items])
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
