"""Reading data through `datasets`: every file kind, Y-Trainer's formats, field mappings, and errors that name the
file and the line (jsonl, csv) or record number (json, parquet, arrow) — through the cached corpus path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_core.config import ConfigError
from trainer_core.config.sources import SourceSpec, hf_datasets_cache
from trainer_core.data.corpus import source_records
from trainer_core.data.files import read_records
from trainer_core.data.records import DataError

ALPACA = [{"instruction": "q1", "input": "", "output": "a1"}, {"instruction": "q2", "input": "x", "output": "a2"}]


def _jsonl(path: Path, rows: list, blank_after: int | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "   ")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _records(spec: SourceSpec | str, tmp_path: Path) -> list[dict]:
    spec = SourceSpec(spec) if isinstance(spec, str) else spec
    return source_records(spec, tmp_path / "cache").dataset.to_list()


def _questions(rows: list[dict]) -> list[str]:
    return [r["messages"][-2]["content"] for r in rows]


def _dataset(rows: list[dict]):
    import datasets

    return datasets.Dataset.from_list(rows)


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    """A hub dataset `acme/faq` prepared in a private HF_DATASETS_CACHE, laid out as `datasets` writes it."""
    import datasets

    rows = tmp_path / "faq.jsonl"
    _jsonl(rows, [{"question": "hub q", "answer": "hub a"}])
    built = datasets.load_dataset("json", data_files=str(rows), split="train", cache_dir=str(tmp_path / "build"))
    src = Path(built.cache_files[0]["filename"]).parent
    cache = tmp_path / "hf"
    dst = cache / "acme___faq" / "default" / "0.0.0" / src.name
    dst.mkdir(parents=True)
    (dst / "dataset_info.json").write_bytes((src / "dataset_info.json").read_bytes())
    (dst / "faq-train.arrow").write_bytes(Path(built.cache_files[0]["filename"]).read_bytes())
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    return cache


def test_every_file_kind_reads_the_same_records(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _jsonl(tmp_path / "a.jsonl", ALPACA)
    (tmp_path / "a.json").write_text(json.dumps(ALPACA))
    (tmp_path / "w.json").write_text(json.dumps({"data": ALPACA}))  # one key holding the list
    (tmp_path / "a.csv").write_text("instruction,input,output\nq1,,a1\nq2,x,a2\n")
    pq.write_table(pa.Table.from_pylist(ALPACA), tmp_path / "a.parquet")
    ds = _dataset(ALPACA)
    with pa.OSFile(str(tmp_path / "a.arrow"), "wb") as sink, pa.ipc.new_stream(sink, ds.data.schema) as writer:
        writer.write_table(ds.data.table)
    ds.save_to_disk(str(tmp_path / "saved"))
    for name in ("a.jsonl", "a.json", "w.json", "a.csv", "a.parquet", "a.arrow", "saved"):
        rows = _records(str(tmp_path / name), tmp_path)
        assert _questions(rows) == ["q1", "q2\n\nx"], name
        assert [r["messages"][-1]["content"] for r in rows] == ["a1", "a2"], name
    lines = [r["line"] for r in _records(str(tmp_path / "a.csv"), tmp_path)]
    assert lines == [2, 3]  # line 1 is the header


def test_a_folder_reads_its_files_and_a_saved_dataset_dict_its_split(tmp_path):
    import datasets

    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    _jsonl(folder / "b.jsonl", ALPACA[1:])
    _jsonl(folder / "sub" / "a.jsonl", ALPACA[:1])
    (folder / "notes.txt").write_text("not data")
    rows = _records(str(folder), tmp_path)
    assert sorted(_questions(rows)) == ["q1", "q2\n\nx"]
    splits = datasets.DatasetDict({"train": _dataset(ALPACA), "test": _dataset(ALPACA[:1])})
    splits.save_to_disk(str(tmp_path / "dd"))
    assert len(_records(SourceSpec(str(tmp_path / "dd"), split="test"), tmp_path)) == 1
    with pytest.raises(DataError, match=r"no split 'dev'; its splits: train, test"):
        _records(SourceSpec(str(tmp_path / "dd"), split="dev"), tmp_path)


def test_a_cached_hub_dataset_loads_offline_and_a_missing_one_is_named(tmp_path, hub_cache):
    from tests.helpers import make_config

    assert make_config(["data.train=acme/faq"]).data.sources()[0].is_hub_id
    rows = _records(SourceSpec("acme/faq"), tmp_path)
    assert rows[0]["messages"] == [{"role": "user", "content": "hub q"}, {"role": "assistant", "content": "hub a"}]
    with pytest.raises(DataError, match=r"acme/nothing: hub dataset not in the local Hugging Face cache"):
        _records(SourceSpec("acme/nothing"), tmp_path)


def test_y_trainer_sft_and_cpt_json_arrays_load_as_they_are(tmp_path):
    sft = tmp_path / "sft.json"
    sft.write_text(json.dumps([{"id": "s1", "instruction": "q", "input": "", "output": "a", "system": "S"},
                               {"id": "s2", "instruction": "q2", "input": "in", "output": "a2"}], ensure_ascii=False))
    cpt = tmp_path / "cpt.json"
    cpt.write_text(json.dumps([{"id": 1, "output": "第一篇文档。"}, {"id": 2, "output": "second document"}],
                              ensure_ascii=False))
    rows = _records(str(sft), tmp_path)
    assert [r["id"] for r in rows] == ["s1", "s2"]
    assert rows[0]["messages"][0] == {"role": "system", "content": "S"}
    docs = _records(str(cpt), tmp_path)
    assert [(d["id"], d["text"]) for d in docs] == [("1", "第一篇文档。"), ("2", "second document")]
    assert [r.text for r in read_records([str(cpt)])] == ["第一篇文档。", "second document"]


def test_columns_and_text_field_map_other_names_and_sharegpt_keeps_its_system(tmp_path):
    f = _jsonl(tmp_path / "q.jsonl", [{"question_text": "why?", "reply": "because"}])
    spec = SourceSpec(str(f), columns={"instruction": "question_text", "output": "reply"})
    assert _records(spec, tmp_path)[0]["messages"][-1] == {"role": "assistant", "content": "because"}
    body = _jsonl(tmp_path / "b.jsonl", [{"body": "plain text"}])
    assert _records(SourceSpec(str(body), format="text", text_field="body"), tmp_path)[0]["text"] == "plain text"
    share = _jsonl(tmp_path / "s.jsonl", [{"system": "Be brief.", "conversations": [
        {"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}])
    assert _records(str(share), tmp_path)[0]["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize("kind,content,expect", [
    ("jsonl", '{"instruction": "ok", "output": "fine"}\n\n{"instruction": "x", "output": 3}\n',
     "a.jsonl:3: 'output' must be a string, got int"),
    ("jsonl", '{"instruction": "ok", "output": "fine"}\n{"instruction": "x", "output": "a"\n',
     "a.jsonl:2: not valid JSON"),
    ("jsonl", '{"instruction": "ok", "output": "fine"}\n\n\n{"instruction": "x", "output": ""}\n',
     "a.jsonl:4: no non-empty assistant answer"),
    ("csv", 'instruction,output\nok,fine\nq,\n', "a.csv:3: no non-empty assistant answer"),
    ("json", json.dumps([ALPACA[0], {"instruction": "x"}]), "a.json:2: missing key 'output'"),
    ("parquet", [ALPACA[0], {"instruction": "x", "input": "", "output": None}], "a.parquet:2: missing key 'output'"),
])
def test_a_malformed_record_names_its_file_and_line(tmp_path, kind, content, expect):
    path = tmp_path / f"a.{kind}"
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(content), path)
    else:
        path.write_text(content)
    with pytest.raises(DataError) as err:
        _records(SourceSpec(str(path), format="alpaca"), tmp_path)
    assert expect in str(err.value)
    assert not list((tmp_path / "cache").glob("records-*"))  # a failed build leaves no entry behind


def test_source_mappings_are_checked_with_their_key_paths(tmp_path):
    from tests.helpers import make_config

    f = _jsonl(tmp_path / "a.jsonl", ALPACA)
    with pytest.raises(ConfigError) as err:
        make_config([f'data.train=[{{path: {f}, ratio: 0.5, fromat: alpaca}}, {{path: {f}}}]',
                     f"data.eval=[{{path: {f}, ratio: 1}}]"])
    problems = "\n".join(err.value.problems)
    assert "data.train[0].fromat: unknown key (did you mean 'format'?)" in problems
    assert "data.train: give a ratio for every source or for none" in problems
    assert "data.eval: ratios are for training sources" in problems
    with pytest.raises(ConfigError, match=r"data.columns.answer_text: not a field the formats read"):
        make_config(["data.columns={answer_text: x}"])
    with pytest.raises(ConfigError) as err:
        make_config(["data.train=[data/missing.jsonl, acme/absent]"])
    assert err.value.problems == [
        "data.train[0]: file 'data/missing.jsonl' not found",
        f"data.train[1]: 'acme/absent' is no local path, and no hub dataset of that name is in the local Hugging "
        f"Face cache ({hf_datasets_cache()}); load it once where the hub is reachable, or give a file"]
    cfg = make_config([f"data.train=[{{path: {f}, ratio: 2}}, {{path: {f}, ratio: 1, format: alpaca}}]"])
    assert [(s.ratio, s.format) for s in cfg.data.sources()] == [(2, "auto"), (1, "alpaca")]
