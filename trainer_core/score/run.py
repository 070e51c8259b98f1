"""`nlirg score`: read records, encode them as the trainer would, score them in batches (split over processes
with --num-procs) a bounded chunk at a time, rank, write the score file and its summary."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import IO, Any

from trainer_core.data.files import iter_records
from trainer_core.data.records import DataError, Record
from trainer_core.score.encode import ScoreItem, encode_records, plain_text_error
from trainer_core.score.modes import AUTO, PLAIN_TEXT_MODE, PROMPT_ANSWER_MODE
from trainer_core.score.options import ScoreOptions
from trainer_core.score.output import print_summary, summary_of, write_summary
from trainer_core.score.parallel import ScorePool
from trainer_core.score.progress import ScoreProgress
from trainer_core.score.report import build_row
from trainer_core.score.scoring import Signals, device_for, score_items, scoring_model, scoring_tokenizer
from trainer_core.score.spool import RowSpool
from trainer_core.train.data.token_text import token_texts

WORST_SHOWN = 5
"""Rows printed under the summary."""


def run(opts: ScoreOptions, stream: IO[str] | None = None, progress_stream: IO[str] | None = None,
        ) -> dict[str, Any]:
    """Score, write OUT and OUT.summary.json, print the summary (stdout; progress on stderr); return the summary.

    Streamed: the records are read twice (a first pass checks every one and counts them before any weights are
    read), then encoded, scored and spooled to disk `opts.chunk` records at a time; the ranking needs only the
    scores (`spool.RowSpool`), so memory does not grow with the corpus."""
    started = time.time()
    total, plain = count_records(opts)
    opts = resolve_mode(opts, plain, progress_stream or sys.stderr)
    tokenizer = scoring_tokenizer(opts)  # the data is encoded before any weights are read: a bad record shows at once
    chunks = encoded_chunks(opts, tokenizer)
    first = next(chunks, [])
    progress = ScoreProgress(total, 0, progress_stream)
    forward_started = time.time()
    spool = RowSpool(opts.out.parent)
    special = frozenset(tokenizer.all_special_ids)  # structural tokens leave the statistics (report._content)
    try:
        with chunk_scorer(opts, tokenizer.pad_token_id, progress.advance) as score_chunk:
            for items in itertools.chain([first], chunks):
                signals, bare = score_chunk(items)
                for it in items:
                    spool.add(build_row(it, signals.get(it.index), bare.get(it.index), opts.mode,
                                        token_texts(tokenizer, it.input_ids), special))
        forward_s = time.time() - forward_started
        progress.close()
        order, quality = spool.write_ranked(opts.out, opts.top)
        worst = list(spool.rows(order[:WORST_SHOWN], quality))
        counts = spool.summary_counts(quality)
    finally:
        spool.close()
    meta = {"mode": opts.mode, "model": opts.model, "data": list(opts.data), "format": opts.format,
            "max_length": opts.max_length, "out": str(opts.out.resolve()), "num_procs": opts.num_procs,
            "batch_size": opts.batch_size, "wall_s": round(time.time() - started, 3),
            "tokens_per_s": round(progress.tokens / max(forward_s, 1e-9), 1)}
    summary = summary_of(counts, min(len(order), opts.top) if opts.top else len(order), meta)
    write_summary(opts.out, summary)
    print_summary(summary, worst, stream or sys.stdout, WORST_SHOWN)
    return summary


def _records(opts: ScoreOptions) -> Iterator[Record]:
    return iter_records(opts.data, opts.format, opts.system_prompt, allow_empty_answer=True)


def count_records(opts: ScoreOptions) -> tuple[int, str | None]:
    """Read every record once, keeping none: (how many, where the first plain-text record is). The first bad
    record (or, for ifd, plain text) raises DataError."""
    total = 0
    plain: str | None = None
    for record in _records(opts):
        if record.messages is None and plain is None:
            if opts.mode == "ifd":
                raise DataError(plain_text_error(record.where))
            plain = record.where
        total += 1
    return total, plain


def resolve_mode(opts: ScoreOptions, plain: str | None, say: IO[str]) -> ScoreOptions:
    """`--mode auto` made concrete: ifd for prompt/answer data; divergence, said in one line, when any record is
    plain text (ifd has no prompt to take away from it)."""
    if opts.mode != AUTO:
        return opts
    if plain is None:
        return replace(opts, mode=PROMPT_ANSWER_MODE)
    print(f"--mode auto: {plain} is plain text, so every record is scored with {PLAIN_TEXT_MODE} "
          f"({PROMPT_ANSWER_MODE} needs prompt/answer records)", file=say)
    return replace(opts, mode=PLAIN_TEXT_MODE)


def encoded_chunks(opts: ScoreOptions, tokenizer) -> Iterator[list[ScoreItem]]:
    """The records as scoring items, `opts.chunk` at a time (times --num-procs: each process gets a share)."""
    size = opts.chunk * opts.num_procs
    records = _records(opts)
    start = 0
    while batch := list(itertools.islice(records, size)):
        yield encode_records(tokenizer, batch, opts.max_length, with_bare=opts.mode == "ifd", start=start)
        start += len(batch)


@contextmanager
def chunk_scorer(opts: ScoreOptions, pad_id: int, advance,
                 ) -> Iterator[Callable[[list[ScoreItem]], tuple[Signals, Signals]]]:
    """items -> (signals, bare signals), the model loaded once for every chunk: in this process, or once in each
    of --num-procs processes that live until the last chunk is scored."""
    if opts.num_procs == 1:
        model, dtype = scoring_model(opts, device_for(0))
        yield lambda items: score_items(model, items, pad_id, opts, dtype, advance)
        return
    with ScorePool(opts, pad_id, advance) as pool:
        yield pool.score
