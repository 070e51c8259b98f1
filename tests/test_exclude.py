"""data.exclude: records named by source (file:line) or id are left out before they are normalised, the
exclude list keys the cache, and the log says how many were excluded."""

from __future__ import annotations

import json

import pytest

from tests.helpers import TINY, make_config, train_in_process, write_alpaca
from trainer_core.config import ConfigError
from trainer_core.config.sources import parse_sources
from trainer_core.data.corpus import read_sources
from trainer_core.data.exclude import exclusion, read_exclude
from trainer_core.data.records import DataError
from trainer_core.live.events import read_events


def _data_with_ids(path, n=24):
    write_alpaca(path, n)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[5]["id"] = "rec-6"
    rows[7]["output"] = ""  # would not normalise: only data.exclude lets a run read this file
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _sources(data):
    return parse_sources([str(data)], "data.train", {"format": "auto", "text_field": None, "columns": {},
                                                     "system_prompt": None})[0]


def test_sources_ids_and_score_rows_all_name_records(tmp_path):
    data = _data_with_ids(tmp_path / "train.jsonl")
    exclude = tmp_path / "drop.txt"
    exclude.write_text("\n".join([
        "# dropped after review",
        f"{data}:2",                                   # absolute source
        "train.jsonl:3",                               # relative to the exclude file's folder
        "rec-6",                                       # an id
        json.dumps({"source": f"{data}:8", "quality": 0.01}),   # a score-file row: the empty answer
        json.dumps({"source": str(data), "line": 10}),          # a flagged / review row
        "",
        "nowhere.jsonl:4",                             # names no record
    ]) + "\n")
    entries = read_exclude(exclude)
    with pytest.raises(DataError, match="train.jsonl:8: no non-empty assistant answer"):
        read_sources(_sources(data), tmp_path / "cache")
    (source,) = read_sources(_sources(data), tmp_path / "cache", exclude=entries)
    assert source.excluded == 5 and sorted(source.dataset["line"]) == [n for n in range(1, 25)
                                                                        if n not in (2, 3, 6, 8, 10)]
    assert exclusion(entries, source.excluded, set(source.exclude_matched)).unmatched == 1  # nowhere.jsonl:4
    exclude.write_text(f"{data}:8\n")  # another list: another cache entry, not the one above
    (again,) = read_sources(_sources(data), tmp_path / "cache", exclude=read_exclude(exclude))
    assert again.excluded == 1 and again.key != source.key


def test_a_bad_exclude_line_names_its_file_and_line(tmp_path):
    exclude = tmp_path / "drop.jsonl"
    exclude.write_text('{"source": "a.jsonl:1"}\n{"quality": 0.2}\n')
    with pytest.raises(DataError, match=r"drop.jsonl:2: give a 'source'"):
        read_exclude(exclude)
    exclude.write_text("{not json\n")
    with pytest.raises(DataError, match=r"drop.jsonl:1: not valid JSON"):
        read_exclude(exclude)


def test_a_missing_exclude_file_is_a_config_problem(tmp_path):
    with pytest.raises(ConfigError, match="data.exclude: file .* not found"):
        make_config([f"data.exclude={tmp_path / 'missing.txt'}"])


@pytest.mark.slow
def test_a_run_with_data_exclude_trains_without_the_listed_records(tmp_path):
    data = _data_with_ids(tmp_path / "train.jsonl")
    exclude = tmp_path / "drop.txt"
    exclude.write_text(f"{data}:1\n{data}:8\nrec-6\n{data}:99\n")
    run_dir = tmp_path / "run"
    trainer, status = train_in_process(run_dir, [*TINY, f"data.train={data}", f"data.exclude={exclude}",
                                                 f"data.cache_dir={tmp_path / 'cache'}", "training.max_steps=1",
                                                 "training.eval_at_start=false"])
    assert status == "completed"
    assert trainer.data.report["totals"]["records"] == 21
    logs = [e["message"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "log"]
    assert any("excluded 3 records; 1 file:line entries" in m for m in logs)


def _trained_lines(trainer) -> set[int]:
    samples = trainer.samples
    return {samples.origin(i)["line"] for i in range(len(samples))}


@pytest.mark.slow
def test_a_new_exclusion_is_never_served_from_the_cache(tmp_path):
    """Train, exclude a line, train again: the cached tokens of the first run are not reused and the line is not
    trained; editing the same exclude file in place is a new key too; the same list again is a cache hit."""
    data = write_alpaca(tmp_path / "train.jsonl", 12)
    exclude = tmp_path / "drop.txt"
    base = [*TINY, f"data.train={data}", f"data.cache_dir={tmp_path / 'cache'}", "training.max_steps=1",
            "training.eval_at_start=false"]

    def train(name, *extra):
        trainer, status = train_in_process(tmp_path / name, [*base, *extra])
        assert status == "completed"
        return trainer.data.cached, _trained_lines(trainer)

    assert train("plain") == (False, set(range(1, 13)))
    assert train("plain-again") == (True, set(range(1, 13)))  # the cache does serve an unchanged config
    exclude.write_text(f"{data}:5\n")
    assert train("drop-5", f"data.exclude={exclude}") == (False, set(range(1, 13)) - {5})
    exclude.write_text(f"{data}:7\n")  # same file, new content
    assert train("drop-7", f"data.exclude={exclude}") == (False, set(range(1, 13)) - {7})
    assert train("drop-7-again", f"data.exclude={exclude}") == (True, set(range(1, 13)) - {7})
