"""What the log and `summary.json` say about a run's data: per source records, samples, tokens and target tokens
read and kept, samples truncated or dropped, and how many samples each source has given the run so far."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from trainer_core.config import RunConfig
    from trainer_core.data.corpus import SourceRecords
    from trainer_core.train.data.sampler import BatchLoader
    from trainer_core.train.data.tokenized import PreparedData

log = logging.getLogger("trainer_core")


def token_report(tokens, train_idx: np.ndarray, sources: list[SourceRecords]) -> dict[str, Any]:
    """Per training source: records, tokens and target tokens read, samples truncated at max_length."""
    cols = {c: tokens.data.column(c).to_numpy()[train_idx] for c in ("source", "read_tokens", "read_targets",
                                                                      "targets")}
    lengths = row_lengths(tokens)[train_idx]
    per_source = []
    for i, source in enumerate(sources):
        mine = cols["source"] == i
        per_source.append({
            "path": source.spec.path, "records": int(mine.sum()),
            "tokens_read": int(cols["read_tokens"][mine].sum()),
            "targets_read": int(cols["read_targets"][mine].sum()),
            "truncated": int((lengths[mine] < cols["read_tokens"][mine]).sum()),
            "dropped": int((cols["targets"][mine] == 0).sum()),
        })
    return {"sources": per_source}


def row_report(rows, index: np.ndarray | None, report: dict[str, Any]) -> dict[str, Any]:
    """Per source: training rows, tokens and target tokens kept; and the totals.

    `index`: the rows are `rows`' table rows at these positions (SFT keeps a selection of the tokenized table:
    its `.data` is the whole table, held-out records included, so the columns are read through the index)."""
    pick = (lambda a: a[index]) if index is not None else (lambda a: a)
    source = pick(rows.data.column("source").to_numpy())
    targets = pick(rows.data.column("targets").to_numpy())
    lengths = pick(row_lengths(rows))
    pieces = pick(rows.data.column("pieces").to_numpy()) if "pieces" in rows.column_names else np.zeros_like(lengths)
    for i, entry in enumerate(report["sources"]):
        mine = source == i
        entry.update(samples=int(mine.sum()), tokens_kept=int(lengths[mine].sum() - pieces[mine].sum()),
                     targets_kept=int(targets[mine].sum()))
    totals = {k: sum(e[k] for e in report["sources"]) for k in ("records", "samples", "tokens_read", "tokens_kept",
                                                                 "targets_read", "targets_kept", "truncated",
                                                                 "dropped")}
    return {"train_rows": len(source), "totals": totals}


def row_lengths(ds) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.list_value_length(ds.data.column("input_ids")).to_numpy()


def summary_line(report: dict[str, Any], sources: list[SourceRecords], cfg: RunConfig) -> str:
    t = report["totals"]
    return (f"{cfg.training.type} {t['samples']:,} train rows from {t['records']:,} records of "
            f"{', '.join(s.spec.path for s in sources)}; {t['tokens_kept']:,} of {t['tokens_read']:,} tokens kept")


def log_data(data: PreparedData, loader: BatchLoader) -> None:
    """One line per source (records, samples per epoch, tokens kept of read, truncated), and where it came from."""
    report = data.report
    for entry, quota in zip(report["sources"], loader.sampler.quotas, strict=True):
        lost = [f"{entry['truncated']:,} truncated at data.max_length"] if entry["truncated"] else []
        lost += [f"{entry['dropped']:,} with no target token left dropped"] if entry["dropped"] else []
        log.info("data: %s: %s records -> %s samples, %s per epoch; tokens kept %s of %s, target tokens %s of %s%s",
                 entry["path"], f"{entry['records']:,}", f"{entry['samples']:,}", f"{quota:,}",
                 f"{entry['tokens_kept']:,}", f"{entry['tokens_read']:,}", f"{entry['targets_kept']:,}",
                 f"{entry['targets_read']:,}", f" ({'; '.join(lost)})" if lost else "")
        if entry["truncated"]:
            log.warning("data: %s: %s samples were longer than data.max_length and were truncated", entry["path"],
                        f"{entry['truncated']:,}")
    how = "from the cache" if data.cached else f"tokenized in {report.get('seconds', 0):.1f} s"
    log.info("data: %s train rows, %s eval rows, %s (%s)", f"{report['train_rows']:,}", f"{report['eval_rows']:,}",
             how, data.key)


def data_summary(data: PreparedData, loader: BatchLoader, epoch: int, batch: int) -> dict[str, Any]:
    """summary.json's `data`: per source what it holds and how many samples it gave the run so far."""
    given = loader.sampler.source_counts(epoch, batch)
    sources = [{**entry, "samples_per_epoch": quota, "samples_given": n}
               for entry, quota, n in zip(data.report["sources"], loader.sampler.quotas, given, strict=True)]
    return {"sources": sources, "totals": data.report["totals"], "train_rows": data.report["train_rows"],
            "eval_rows": data.report["eval_rows"], "cache_key": data.key, "cached": data.cached}
