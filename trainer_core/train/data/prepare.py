"""The data path of a run (docs/design.md §11): sources -> normalised records -> token rows, cached, memory-mapped.

Stage 1 (`corpus`) reads and normalises each source. Stage 2 (here) tokenizes every record with
`Dataset.map(batched=True, num_proc=N)`, holds out the eval split, drops SFT samples whose answer was truncated
away, cuts CPT documents into rows (`packing`), and saves the train and eval tables under a key of everything
that changes them. A second launch, a `--resume`, an A/B arm or a relaunch with the same data and tokenizer
finds the entry and only maps it: no record is read or tokenized again.

Progress goes to `progress(phase, done, total, seconds)` (the trainer turns it into `status` events).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from trainer_core.config import RunConfig
from trainer_core.data.cache import building, cache_key, cache_root, lookup, read_meta, write_meta
from trainer_core.data.cache_prune import enforce_cap
from trainer_core.data.corpus import Report, SourceRecords, map_procs, num_procs, read_sources
from trainer_core.data.exclude import ExcludeList, Exclusion, exclusion, read_exclude
from trainer_core.data.files import quiet_datasets
from trainer_core.data.records import DataError
from trainer_core.data.split import split_indices
from trainer_core.train.data.packing import cut_rows
from trainer_core.train.data.report import row_report, summary_line, token_report
from trainer_core.train.data.tokenize import tokenize_batch
from trainer_core.train.data.tokenized import PreparedData, TokenizedSet

log = logging.getLogger("trainer_core")

REPORT_EVERY_S = 0.5
"""At most this often a progress report (a `status` event) while tokenizing."""


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything about a tokenizer that changes token ids or the rendered chat."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update(backend.to_str().encode() if backend is not None else repr(tokenizer.get_vocab()).encode())
    for part in (type(tokenizer).__name__, tokenizer.chat_template or "", repr(sorted(tokenizer.special_tokens_map
                                                                                       .items())),
                 repr(getattr(tokenizer, "add_bos_token", None)), repr(tokenizer.eos_token_id)):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:20]


def prepare_data(cfg: RunConfig, tokenizer, progress: Report | None = None) -> PreparedData:
    """Train and eval sets for `cfg`, from the cache or built (once across processes) into it."""
    quiet_datasets()
    d, t = cfg.data, cfg.training
    root = cache_root(d.cache_dir)
    exclude = read_exclude(d.exclude) if d.exclude else None
    train_sources = read_sources(d.sources("train"), root, d.num_proc, progress, exclude)
    eval_sources = read_sources(d.sources("eval"), root, d.num_proc, progress, exclude)
    held_out = d.eval_fraction if not eval_sources else 0.0
    parts = {"train": [s.key for s in train_sources], "eval": [s.key for s in eval_sources],
             "tokenizer": tokenizer_fingerprint(tokenizer), "type": t.type, "max_length": d.max_length,
             "pack_length": d.pack_length, "eval_fraction": held_out, "seed": t.seed if held_out else None}
    key = cache_key("tokens", parts)
    cached = lookup(root, key) is not None
    if not cached:
        with building(root, key) as tmp:
            if tmp is not None:
                _build(tmp, cfg, tokenizer, train_sources, eval_sources, held_out, progress)
    entry = lookup(root, key)
    assert entry is not None, key
    meta = read_meta(entry)
    in_use = {key, *(s.key for s in [*train_sources, *eval_sources])}
    for gone in enforce_cap(root, int(d.cache_max_gb * 2**30), in_use):  # data.cache_max_gb: oldest use first
        log.info("data cache: removed %s (%s), least recently used, to stay under data.cache_max_gb", gone.name,
                 gone.summary)
    packed = t.type == "cpt" and d.pack_length > 0
    train = _load(entry / "train", train_sources, packed)
    evals = _load(entry / "eval", eval_sources or train_sources, packed) if meta["eval_rows"] else None
    return PreparedData(train, evals, meta, key, cached, _exclusion(exclude, [*train_sources, *eval_sources]))


def _exclusion(exclude: ExcludeList | None, sources: list[SourceRecords]) -> Exclusion | None:
    if exclude is None:
        return None
    matched = set().union(*(s.exclude_matched for s in sources))
    return exclusion(exclude, sum(s.excluded for s in sources), matched)


def _load(folder: Path, sources: list[SourceRecords], packed: bool) -> TokenizedSet:
    from datasets import load_from_disk

    return TokenizedSet(load_from_disk(str(folder)), sources, packed)


# --------------------------------------------------------------------------- building an entry
def _build(folder: Path, cfg: RunConfig, tokenizer, train_sources: list[SourceRecords],
           eval_sources: list[SourceRecords], held_out: float, progress: Report | None) -> None:
    from datasets import concatenate_datasets

    started = time.time()
    work = folder / "work"
    work.mkdir()
    d, t = cfg.data, cfg.training
    total = sum(len(s.dataset) for s in [*train_sources, *eval_sources])
    counter = _Counter(progress, total)
    train_tokens = [_tokenize(s, i, tokenizer, cfg, work, counter) for i, s in enumerate(train_sources)]
    eval_tokens = [_tokenize(s, i, tokenizer, cfg, work, counter, "eval") for i, s in enumerate(eval_sources)]
    tokens = concatenate_datasets(train_tokens) if len(train_tokens) > 1 else train_tokens[0]
    train_idx, eval_idx = split_indices(len(tokens), held_out, t.seed)
    report = token_report(tokens, train_idx, train_sources)
    if eval_tokens:
        evals = concatenate_datasets(eval_tokens) if len(eval_tokens) > 1 else eval_tokens[0]
        eval_idx = np.arange(len(evals))
    else:
        evals = tokens
    if t.type == "cpt":
        rows = d.pack_length or d.max_length
        train_rows = _cut(tokens, train_idx, rows, d.pack_length > 0, work / "train-rows.arrow")
        eval_rows = _cut(evals, eval_idx, rows, d.pack_length > 0, work / "eval-rows.arrow")
    else:
        targets = tokens.data.column("targets").to_numpy()
        kept = train_idx[targets[train_idx] > 0]
        train_rows = tokens.select(kept)
        eval_rows = evals.select(eval_idx[evals.data.column("targets").to_numpy()[eval_idx] > 0])
    if len(train_rows) == 0:
        raise DataError("data.train: no sample has a target token left after tokenisation "
                        f"(data.max_length={d.max_length} cuts every answer away?)")
    train_rows.save_to_disk(str(folder / "train"))
    eval_rows.save_to_disk(str(folder / "eval"))
    if t.type == "cpt":
        report.update(row_report(train_rows, None, report))
    else:  # SFT rows are a selection of `tokens`
        report.update(row_report(tokens, kept, report))
    report.update(eval_rows=len(eval_rows), seconds=round(time.time() - started, 2))
    del tokens, evals, train_rows, eval_rows, train_tokens, eval_tokens
    shutil.rmtree(work, ignore_errors=True)
    write_meta(folder, {"kind": "tokens", **report, "summary": summary_line(report, train_sources, cfg),
                        "records_keys": [s.key for s in [*train_sources, *eval_sources]]})
    log.info("data: tokenized %s records in %.1f s (%.0f records/s)", f"{total:,}", time.time() - started,
             total / max(time.time() - started, 1e-9))


class _Counter:
    """Adds up records tokenized over all sources for one progress bar, reported at most every REPORT_EVERY_S."""

    def __init__(self, progress: Report | None, total: int):
        self.progress, self.total, self.done, self.shown = progress, total, 0, 0.0
        self.started = time.time()

    def add(self, n: int) -> None:
        self.done += n
        now = time.time()
        if self.progress is not None and (now - self.shown >= REPORT_EVERY_S or self.done >= self.total):
            self.shown = now
            self.progress("tokenizing", self.done, self.total, now - self.started)


@contextmanager
def map_progress(add: Callable[[int], None]) -> Iterator[None]:
    """Feed `Dataset.map`'s own progress (records done, from every worker) to `add`.

    `datasets` reports map progress only to its tqdm bar; for the length of one map call its bar class is a
    counter that passes the numbers on. Where a `datasets` version has no such hook, progress comes only when
    the map ends.
    """
    import datasets.arrow_dataset as arrow_dataset

    original = getattr(arrow_dataset, "hf_tqdm", None)

    class Counter:
        def __init__(self, *args: Any, initial: int = 0, **kwargs: Any) -> None:
            self.n = initial

        def __enter__(self) -> Counter:
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

        def update(self, n: int = 1) -> None:
            self.n += n
            add(n)

        def set_description(self, *args: Any, **kwargs: Any) -> None:
            pass

        def close(self) -> None:
            pass

    if original is not None:
        arrow_dataset.hf_tqdm = Counter
    try:
        yield
    finally:
        if original is not None:
            arrow_dataset.hf_tqdm = original


def token_features():
    from datasets import Features, List, Value

    return Features({"input_ids": List(Value("int32")), "spans": List(Value("int32")),
                     "read_tokens": Value("int32"), "read_targets": Value("int32"), "targets": Value("int32"),
                     "record": Value("int64"), "source": Value("int32")})


def _tokenize(source: SourceRecords, index: int, tokenizer, cfg: RunConfig, work: Path, counter: _Counter,
              split: str = "train"):
    """One source's records through `tokenize_batch` in `data.num_proc` workers."""
    ds = source.dataset
    procs = num_procs(cfg.data.num_proc, len(ds))
    name = f"{split}-{index}"
    done_before = counter.done
    with map_progress(counter.add):
        out = ds.map(
            tokenize_batch, batched=True, batch_size=256, with_indices=True, num_proc=map_procs(procs),
            remove_columns=ds.column_names, features=token_features(), new_fingerprint=name,
            cache_file_name=str(work / f"{name}.arrow"),
            fn_kwargs={"tokenizer": tokenizer, "kind": cfg.training.type, "max_length": cfg.data.max_length,
                       "source": index, "file_names": source.files})
    counter.add(done_before + len(ds) - counter.done)  # whatever the progress hook did not see
    return out


def _cut(tokens, indices: np.ndarray, row_length: int, pack: bool, path: Path):
    """CPT rows of the documents at `indices` (packed per source, so every row belongs to one source)."""
    import pyarrow as pa
    from datasets import Dataset

    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("spans", pa.list_(pa.int32())),
                        ("seg_starts", pa.list_(pa.int32())), ("targets", pa.int32()), ("record", pa.int64()),
                        ("source", pa.int32()), ("pieces", pa.int32())])
    sources = tokens.data.column("source").to_numpy()[indices] if len(indices) else np.arange(0)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for source in np.unique(sources):
            rows: list[dict[str, Any]] = []
            docs = _documents(tokens, indices[sources == source])
            for row in cut_rows(docs, row_length, pack):
                rows.append({"input_ids": row.input_ids, "spans": row.spans, "seg_starts": row.seg_starts,
                             "targets": row.targets, "record": row.record, "source": int(source),
                             "pieces": row.pieces})
                if len(rows) == 1024:
                    writer.write_batch(pa.RecordBatch.from_pylist(rows, schema))
                    rows = []
            if rows:
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema))
    return Dataset.from_file(str(path), in_memory=False)


def _documents(tokens, indices: np.ndarray):
    """(record, token ids) of the documents at `indices`, in order, read a block at a time."""
    for start in range(0, len(indices), 1024):
        block = tokens.select_columns(["input_ids", "record"])[indices[start:start + 1024].tolist()]
        yield from zip(block["record"], block["input_ids"], strict=True)


# --------------------------------------------------------------------------- the run's view
def make_loader(data: PreparedData, cfg: RunConfig, world_size: int, rank: int, pad_id: int):
    """The BatchLoader of a run: its sampler settings from the config, ratios from the sources."""
    from trainer_core.train.data.sampler import BatchLoader, SamplerConfig

    ratios = [s.ratio for s in cfg.data.sources("train")]
    sampler = SamplerConfig(batch_size=cfg.training.batch_size, world_size=world_size, rank=rank,
                            seed=cfg.training.seed, group_by_length=cfg.data.group_by_length,
                            ratios=tuple(ratios) if all(r is not None for r in ratios) else None)
    return BatchLoader(data.train, sampler, pad_id, cfg.data.pad_to_multiple_of)
