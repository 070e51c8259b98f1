"""The cached data path end to end: cache keys, exact epochs, length grouping, source ratios, CPT rows that keep
every token, rank shares and fillers, progress events, and runs from a `save_to_disk` folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY, make_config, step_losses, train_in_process, write_alpaca
from trainer_core.live.events import read_events
from trainer_core.train.data.batch import collate
from trainer_core.train.data.prepare import make_loader, prepare_data
from trainer_core.train.data.sampler import EpochSampler, SamplerConfig, quotas
from trainer_core.train.data.tokenize import encode_texts


def _cfg(tmp_path: Path, *extra: str):
    return make_config([*TINY, f"data.cache_dir={tmp_path / 'cache'}", *extra])


def _documents(path: Path, lengths: list[int]) -> Path:
    """CPT documents of about `lengths` words each."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    with path.open("w") as fh:
        for i, n in enumerate(lengths):
            text = f"Doc {i}: " + " ".join(words[(i + k) % len(words)] for k in range(n))
            fh.write(json.dumps({"text": text}) + "\n")
    return path


def test_the_cache_hits_on_the_same_inputs_and_misses_on_each_change(tmp_path, tiny_tokenizer, tiny_path):
    from transformers import AutoTokenizer

    data = write_alpaca(tmp_path / "d.jsonl", n=12)
    base = [f"data.train={data}"]
    first = prepare_data(_cfg(tmp_path, *base), tiny_tokenizer)
    again = prepare_data(_cfg(tmp_path, *base), tiny_tokenizer)
    assert not first.cached and again.cached and again.key == first.key
    assert again.train[3].input_ids == first.train[3].input_ids
    shorter = prepare_data(_cfg(tmp_path, *base, "data.max_length=64"), tiny_tokenizer)
    assert not shorter.cached and shorter.key != first.key
    assert max(shorter.train.lengths) <= 64
    assert len(list((tmp_path / "cache").glob("records-*"))) == 1  # records were read once for all of these
    other = AutoTokenizer.from_pretrained(tiny_path)
    other.chat_template = tiny_tokenizer.chat_template.replace("'\\n'", "'\\n\\n'")
    retemplated = prepare_data(_cfg(tmp_path, *base), other)
    assert not retemplated.cached and retemplated.key != first.key
    write_alpaca(data, n=13)  # the file changed: its records and tokens are built again
    changed = prepare_data(_cfg(tmp_path, *base), tiny_tokenizer)
    assert not changed.cached and len(changed.train) == 13
    assert prepare_data(_cfg(tmp_path, *base), tiny_tokenizer).cached


def test_one_epoch_trains_every_sample_exactly_once(tmp_path):
    """76 samples at 16 a step: 5 steps, the last one of 12 samples; with grad_accum 2: 3 steps, the last one
    micro-batch. Never a sample twice, never one missing."""
    data = write_alpaca(tmp_path / "d.jsonl", n=76)
    for accum, steps in ((1, 5), (2, 3)):
        seen: list[int] = []

        def record(trainer, seen=seen):
            fetch = trainer.loader.micro_batch

            def wrapped(epoch, b):
                batch = fetch(epoch, b)
                seen.extend([] if batch.filler else batch.sample_ids)
                return batch
            trainer.loader.micro_batch = wrapped

        run = tmp_path / f"accum{accum}"
        trainer, status = train_in_process(run, [*TINY, f"data.train={data}", "training.batch_size=16",
                                                 f"training.grad_accum={accum}", "training.epochs=1",
                                                 "training.eval_at_start=false"], before_fit=record)
        summary = json.loads((run / "summary.json").read_text())
        assert status == "completed" and summary["steps"] == steps == trainer.total_steps
        assert sorted(seen) == list(range(76))
        assert summary["epochs_done"] == 1.0 and trainer.samples_done == 76
        assert summary["train_tokens"] == int(trainer.samples.target_counts.sum())
        assert summary["data"]["sources"][0]["samples_given"] == 76


def test_an_epochs_last_global_batch_is_shared_by_ranks_and_an_empty_share_is_a_filler(tmp_path, tiny_tokenizer):
    lengths = np.arange(5) + 10
    shares = {}
    for rank in (0, 1):
        sampler = EpochSampler(lengths, np.zeros(5, dtype=np.int64), SamplerConfig(2, 2, rank, seed=1))
        assert sampler.batches_per_epoch == 2
        shares[rank] = [sampler.share(0, b).tolist() for b in range(2)]
    assert [len(s) for s in shares[0]] == [2, 1] and [len(s) for s in shares[1]] == [2, 0]
    assert sorted(sum(shares[0] + shares[1], [])) == list(range(5))  # the one-rank epoch's samples, once each
    data = write_alpaca(tmp_path / "d.jsonl", n=5)
    prepared = prepare_data(_cfg(tmp_path, f"data.train={data}"), tiny_tokenizer)
    loader = make_loader(prepared, _cfg(tmp_path, f"data.train={data}"), 2, 1, tiny_tokenizer.pad_token_id)
    assert not loader.micro_batch(0, 0).filler and loader.micro_batch(0, 1).filler
    loader.plan(1.0)
    assert loader.micro_batch(1, 0).filler  # past the planned epoch: completes a last step, trains nothing


def test_group_by_length_is_deterministic_pads_less_and_keeps_every_sample():
    lengths = np.random.default_rng(0).integers(10, 400, size=403)
    sources = np.zeros(len(lengths), dtype=np.int64)

    def padding(order: np.ndarray) -> int:
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in np.array_split(order, 101))

    grouped = EpochSampler(lengths, sources, SamplerConfig(4, 1, 0, seed=5, group_by_length=True))
    same = EpochSampler(lengths, sources, SamplerConfig(4, 1, 0, seed=5, group_by_length=True))
    plain = EpochSampler(lengths, sources, SamplerConfig(4, 1, 0, seed=5))
    other = EpochSampler(lengths, sources, SamplerConfig(4, 1, 0, seed=6, group_by_length=True))
    for epoch in (0, 1):
        assert np.array_equal(grouped.order(epoch), same.order(epoch))
        assert sorted(grouped.order(epoch).tolist()) == list(range(len(lengths)))
        assert padding(grouped.order(epoch)) < padding(plain.order(epoch)) / 3
    assert not np.array_equal(grouped.order(0), grouped.order(1))
    assert not np.array_equal(grouped.order(0), other.order(0))


def test_group_by_length_resumes_exactly_inside_an_epoch(tmp_path):
    data = write_alpaca(tmp_path / "d.jsonl", n=24)
    args = [*TINY, f"data.train={data}", "data.group_by_length=true", "training.max_steps=10",
            "training.save_every=5", "training.save_total_limit=0"]
    train_in_process(tmp_path / "straight", args)
    train_in_process(tmp_path / "resumed", args, resume=tmp_path / "straight" / "checkpoints" / "step-5")
    assert step_losses(tmp_path / "resumed") == pytest.approx(step_losses(tmp_path / "straight")[5:], abs=1e-6)


def test_source_ratios_set_each_epochs_shares_deterministically():
    assert quotas([30, 10], (0.5, 0.5)) == [20, 20] and quotas([30, 10], None) == [30, 10]
    assert quotas([3, 3, 3], (1, 1, 1)) == [3, 3, 3] and sum(quotas([7, 5], (0.7, 0.3))) == 12
    sources = np.array([0] * 30 + [1] * 10)
    sampler = EpochSampler(np.full(40, 8), sources, SamplerConfig(4, 1, 0, seed=2, ratios=(0.5, 0.5)))
    again = EpochSampler(np.full(40, 8), sources, SamplerConfig(4, 1, 0, seed=2, ratios=(0.5, 0.5)))
    first, second = sampler.order(0), sampler.order(1)
    assert np.array_equal(first, again.order(0)) and len(first) == 40
    a0, a1 = set(first[first < 30].tolist()), set(second[second < 30].tolist())
    assert len(a0) == 20 and a0 | a1 == set(range(30))  # the big source shows its other rows next epoch
    assert np.bincount(first[first >= 30] - 30).tolist() == [2] * 10  # the small one twice each, as asked
    assert sampler.source_counts(2, 5) == [20 * 2 + int((sampler.order(2)[:20] < 30).sum()),
                                           20 * 2 + int((sampler.order(2)[:20] >= 30).sum())]


def test_a_run_mixes_sources_by_ratio_and_reports_what_each_gave(tmp_path):
    big, small = write_alpaca(tmp_path / "big.jsonl", n=18), write_alpaca(tmp_path / "small.jsonl", n=6)
    run = tmp_path / "mix"
    trainer, status = train_in_process(run, [*TINY, f"data.train=[{{path: {big}, ratio: 0.5}}, "
                                                    f"{{path: {small}, ratio: 0.5, format: alpaca}}]",
                                             "training.epochs=2", "training.eval_at_start=false"])
    sources = json.loads((run / "summary.json").read_text())["data"]["sources"]
    assert status == "completed"
    assert [(s["records"], s["samples_per_epoch"], s["samples_given"]) for s in sources] == [(18, 12, 24),
                                                                                              (6, 12, 24)]


def test_cpt_rows_keep_every_token_packed_or_not(tmp_path, tiny_tokenizer):
    """Issue: packing at 128 used to train a fifth of the target tokens. Every token but each document's first
    is a target exactly once, packed or split, and one epoch trains the same target tokens either way."""
    docs = _documents(tmp_path / "docs.jsonl", [20, 150, 60, 30, 90])
    texts = [json.loads(line)["text"] for line in docs.read_text().splitlines()]
    expected = sum(len(ids) - 1 for ids in encode_texts(tiny_tokenizer, texts))
    assert max(len(ids) for ids in encode_texts(tiny_tokenizer, texts)) > 300
    trained = {}
    for name, extra in (("packed", ["data.pack_length=128"]), ("split", ["data.max_length=96"])):
        cfg = _cfg(tmp_path, f"data.train={docs}", "training.type=cpt", *extra)
        prepared = prepare_data(cfg, tiny_tokenizer)
        assert int(prepared.train.target_counts.sum()) == expected, name
        assert max(prepared.train.lengths) <= (128 if name == "packed" else 96)
        totals = prepared.report["totals"]
        assert totals["tokens_kept"] == totals["tokens_read"] and totals["targets_kept"] == expected
        run = tmp_path / name
        train_in_process(run, [*TINY, f"data.train={docs}", "training.type=cpt", *extra, "training.epochs=1",
                               "training.batch_size=8", "training.eval_at_start=false"])
        trained[name] = json.loads((run / "summary.json").read_text())["train_tokens"]
    assert trained["packed"] == trained["split"] == expected


def test_batches_pad_to_a_multiple_of_eight(tmp_path, tiny_tokenizer):
    data = write_alpaca(tmp_path / "d.jsonl", n=6)
    prepared = prepare_data(_cfg(tmp_path, f"data.train={data}"), tiny_tokenizer)
    rows = prepared.train[0:3]
    batch = collate(rows, tiny_tokenizer.pad_token_id, 8)
    assert batch.input_ids.shape[1] % 8 == 0 and batch.input_ids.shape[1] - max(len(r.input_ids) for r in rows) < 8
    assert batch.input_tokens == sum(len(r.input_ids) for r in rows)


def test_a_run_trains_from_a_save_to_disk_folder_and_reports_tokenizing(tmp_path):
    import datasets

    rows = [{"instruction": f"What is {i} times 3?", "output": f"It is {3 * i}."} for i in range(10)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    run = tmp_path / "run"
    trainer, status = train_in_process(run, [*TINY, f"data.train={tmp_path / 'saved'}", "training.max_steps=2",
                                             f"data.cache_dir={tmp_path / 'cache'}"])
    assert status == "completed" and len(trainer.samples) == 10
    flagged_origin = trainer.samples.origin(4)
    assert flagged_origin == {"source": str((tmp_path / "saved").resolve()), "line": 5, "id": None}
    progress = [e for e in read_events(run / "events.jsonl") if e["type"] == "status" and e.get("phase")]
    tokenizing = [e for e in progress if e["phase"] == "tokenizing"]
    assert tokenizing and tokenizing[-1]["done"] == tokenizing[-1]["total"] == 10
    assert tokenizing[-1]["samples_per_s"] > 0 and tokenizing[-1]["status"] == "starting"
    second, _ = train_in_process(tmp_path / "again", [*TINY, f"data.train={tmp_path / 'saved'}",
                                                      "training.max_steps=1", f"data.cache_dir={tmp_path / 'cache'}"])
    assert second.data.cached  # a second launch tokenizes nothing


def test_a_held_out_share_counts_on_neither_side_of_tokens_kept_of_read(tmp_path, tiny_tokenizer):
    """Issue 25: `tokens kept 44,860 of 42,745`: the kept side counted the held-out records too."""
    data = write_alpaca(tmp_path / "d.jsonl", n=12)
    prepared = prepare_data(_cfg(tmp_path, f"data.train={data}", "data.eval_fraction=0.25"), tiny_tokenizer)
    totals = prepared.report["totals"]
    assert len(prepared.eval) == 3 and prepared.report["train_rows"] == len(prepared.train) == 9
    assert totals["records"] == totals["samples"] == 9 and totals["truncated"] == 0
    assert totals["tokens_kept"] == totals["tokens_read"] == int(np.sum(prepared.train.lengths))
    assert totals["targets_kept"] == totals["targets_read"] == int(prepared.train.target_counts.sum())
