"""The Data screen's cleaned copies: untouched records byte-identical in every file kind, dropped records gone,
edited ones replaced in the file's own format, a changes log; relaunch configs pointed at the copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlirg_tui.cleaning import CleanError, clean_file, clean_paths, write_cleaned
from nlirg_tui.launching import config_on_cleaned_data, swap_data
from nlirg_tui.overlay import Decision, Overlay
from nlirg_tui.record_fields import editable_fields, record_problem, with_values
from trainer_core.config import build_config, config_from_dict
from trainer_core.data.files import builtin_data_path, read_records
from trainer_core.data.records import DataError

EDITED = {"instruction": "What is 3 plus 3?", "input": "", "output": "The answer is 6."}


def _jsonl_lines() -> list[bytes]:
    rows = [{"instruction": f"Q{i} 问题\u2028next", "output": f"A{i} 答案"} for i in range(5)]
    lines = [json.dumps(r, ensure_ascii=False).encode() + b"\r\n" for r in rows]
    lines.insert(2, b"\r\n")  # a blank line: line numbers count it, as records.py does
    lines[-1] = lines[-1].rstrip(b"\r\n")  # no newline at the end of the file
    return lines


def test_jsonl_untouched_records_are_byte_identical(tmp_path):
    lines = _jsonl_lines()
    src = tmp_path / "train.jsonl"
    src.write_bytes(b"".join(lines))
    result = clean_file(src, {2: Decision("drop", "quality 0.010"), 4: Decision("edit", "quality 0.2", EDITED)},
                        tmp_path)
    assert result.clean == tmp_path / "train.clean.jsonl" and (result.dropped, result.edited) == (1, 1)
    out = result.clean.read_bytes().splitlines(keepends=True)
    expect = [lines[0], lines[2], json.dumps(EDITED, ensure_ascii=False).encode() + b"\r\n", *lines[4:]]
    assert out == expect
    assert src.read_bytes() == b"".join(lines)  # never in place
    log = [json.loads(line) for line in result.changes.read_text().split("\n") if line]
    assert [(e["action"], e["source"].endswith(":2")) for e in log] == [("drop", True), ("edit", False)]
    assert log[1]["after"] == EDITED and log[1]["before"]["output"] == "A2 答案" and log[0]["reason"]
    assert [r.messages[-1]["content"] for r in read_records([str(result.clean)])] == \
        ["A0 答案", "The answer is 6.", "A3 答案", "A4 答案"]


def test_json_and_csv_keep_their_format_and_their_bytes(tmp_path):
    elements = ['{"instruction": "a",\n    "output": "b"}', '{"instruction": "c", "output": "d"}',
                '{"instruction": "e", "output": "f"}']
    src = tmp_path / "train.json"
    src.write_text("{\"data\": [\n  " + ",\n  ".join(elements) + "\n]}\n")
    result = clean_file(src, {2: Decision("drop", "x")}, tmp_path)
    text = result.clean.read_text()
    assert elements[0] in text and elements[2] in text and elements[1] not in text
    assert [r.line for r in read_records([str(result.clean)])] == [1, 2]
    csv_src = tmp_path / "train.csv"
    rows = ['instruction,output\r\n', 'a,b\r\n', '"two\r\nlines",x\r\n', 'q,"w, with comma"\r\n']
    csv_src.write_bytes("".join(rows).encode())
    result = clean_file(csv_src, {3: Decision("drop", "x"), 4: Decision("edit", "y", {"instruction": "q",
                                                                                     "output": "new"})}, tmp_path)
    assert result.clean.read_bytes() == (rows[0] + rows[1] + "q,new\r\n").encode()


def test_cleaned_copies_of_bundled_data_go_beside_the_review(tmp_path):
    demo = builtin_data_path("builtin:demo")
    clean, log = clean_paths(demo, tmp_path)
    assert clean == tmp_path / "sft.clean.jsonl" and log == tmp_path / "sft.changes.jsonl"
    results = write_cleaned({f"{demo}:1": Decision("drop", "x")}, tmp_path)
    assert results[0].clean.read_text().splitlines() == demo.read_text().splitlines()[1:]


def test_a_record_gone_since_the_review_is_refused(tmp_path):
    src = tmp_path / "train.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n')
    with pytest.raises(CleanError, match=r"train.jsonl:7: no such record"):
        clean_file(src, {7: Decision("drop", "x")}, tmp_path)


def test_relaunch_config_points_at_the_cleaned_files(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        (folder / name).write_text('{"instruction": "a", "output": "b"}\n')
    cleaned = {(folder / "b.jsonl").resolve(): tmp_path / "b.clean.jsonl",
               builtin_data_path("builtin:demo").resolve(): tmp_path / "sft.clean.jsonl"}
    defaults = {"format": "auto", "text_field": None, "columns": {}, "system_prompt": None}
    assert swap_data([str(folder), "builtin:demo-chat", {"path": "builtin:demo", "ratio": 0.5}], cleaned,
                     defaults) == [str((folder / "a.jsonl").resolve()), str(tmp_path / "b.clean.jsonl"),
                                   "builtin:demo-chat", {"path": str(tmp_path / "sft.clean.jsonl"), "ratio": 0.5}]
    (tmp_path / "b.clean.jsonl").write_text('{"instruction": "a", "output": "b"}\n')
    text = config_on_cleaned_data(config_from_dict({"model": {"path": "builtin:tiny"},
                                                    "data": {"train": [str(folder / "b.jsonl")]}}), cleaned)
    (tmp_path / "c.yaml").write_text(text)
    assert build_config(tmp_path / "c.yaml").data.train == [str(tmp_path / "b.clean.jsonl")]


def test_editor_fields_follow_the_record_format():
    conv = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q1"},
                         {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
                         {"role": "assistant", "content": "a2"}]}
    fields = editable_fields(conv)
    assert [f.value for f in fields] == ["q2", "a2"]
    edited = with_values(conv, fields, ["q2", "fixed"])
    assert edited["messages"][4]["content"] == "fixed" and conv["messages"][4]["content"] == "a2"
    assert [f.label.split()[0] for f in editable_fields(EDITED)] == ["prompt", "input", "answer"]
    assert record_problem(with_values(EDITED, editable_fields(EDITED), ["q", "", ""]), "x:1") == \
        "x:1: no non-empty assistant answer to train on"
    assert record_problem(EDITED, "x:1") is None


def test_the_overlay_survives_a_reopen(tmp_path):
    overlay = Overlay(tmp_path / "s.overlay.json")
    overlay.set("/d/a.jsonl:3", Decision("edit", "q", EDITED, "typo"))
    overlay.set("/d/a.jsonl:4", Decision("keep", "q"))
    again = Overlay(tmp_path / "s.overlay.json")
    assert again.get("/d/a.jsonl:3").record == EDITED and list(again.changes()) == ["/d/a.jsonl:3"]


def test_review_refuses_a_file_it_cannot_read_in_one_line(tmp_path):
    from tests.helpers import nlirg_cli

    not_scores = tmp_path / "train.jsonl"
    not_scores.write_text('{"instruction": "a", "output": "b"}\n')
    proc = nlirg_cli("review", str(not_scores), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == \
        f"error: {not_scores}:1: not a score or flagged row (no 'source')"


def _folder_of(tmp_path, counts: tuple[int, ...]):
    folder = tmp_path / "b"
    folder.mkdir()
    for i, n in enumerate(counts):
        (folder / f"b{i}.jsonl").write_text('{"instruction": "q", "output": "a"}\n' * n)
    return folder


DEFAULTS = {"format": "auto", "text_field": None, "columns": {}, "system_prompt": None}


def test_a_cleaned_folder_lists_neither_the_changes_log_nor_the_copy_twice(tmp_path):
    folder = _folder_of(tmp_path, (1, 2, 3))
    written = write_cleaned({f"{folder / 'b1.jsonl'}:1": Decision("drop", "x")}, tmp_path)
    assert written[0].clean.parent == folder  # `w` writes beside the original, inside the folder source
    swapped = swap_data([str(folder)], {r.source.resolve(): r.clean for r in written}, DEFAULTS)
    assert swapped == [str((folder / name).resolve()) for name in ("b0.jsonl", "b1.clean.jsonl", "b2.jsonl")]


def test_a_cleaned_folder_keeps_its_ratio_split_by_records(tmp_path):
    """[a .7, b/ .3]: every file of b/ with the whole .3 would give b/ 56% of each epoch (the sampler normalises)."""
    (tmp_path / "a.jsonl").write_text('{"instruction": "q", "output": "a"}\n' * 10)
    folder = _folder_of(tmp_path, (1, 2, 3))
    written = write_cleaned({f"{folder / 'b1.jsonl'}:1": Decision("drop", "x")}, tmp_path)
    swapped = swap_data([{"path": str(tmp_path / "a.jsonl"), "ratio": 0.7}, {"path": str(folder), "ratio": 0.3}],
                        {r.source.resolve(): r.clean for r in written}, DEFAULTS)
    ratios = [e["ratio"] for e in swapped]
    assert sum(ratios[1:]) / sum(ratios) == pytest.approx(0.3)  # b/ keeps its share of the epoch
    assert ratios[1:] == pytest.approx([0.3 * n / 5 for n in (1, 1, 3)])  # its files as many records as they hold


def test_a_file_with_every_record_dropped_is_refused_when_written(tmp_path):
    """Not at train time: `w` itself refuses, names the file, and writes neither the copy nor the log."""
    folder = _folder_of(tmp_path, (2, 1))
    drops = {f"{folder / 'b0.jsonl'}:{n}": Decision("drop", "x") for n in (1, 2)}
    with pytest.raises(CleanError, match=r"b0.jsonl: every record \(2\) is dropped"):
        write_cleaned({**drops, f"{folder / 'b1.jsonl'}:1": Decision("keep", "x")}, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["b0.jsonl", "b1.jsonl"]
    written = write_cleaned({f"{folder / 'b0.jsonl'}:1": Decision("drop", "x")}, tmp_path)  # one kept: written
    assert written[0].clean.read_text() == '{"instruction": "q", "output": "a"}\n'


def test_a_folder_source_skips_what_cleaning_wrote(tmp_path):
    """A folder read after `w` holds NAME.clean.EXT and NAME.changes.jsonl beside the original: reading them would
    train on the cleaned records twice (and on the log as data)."""
    folder = _folder_of(tmp_path, (2, 3))
    write_cleaned({f"{folder / 'b1.jsonl'}:1": Decision("drop", "x")}, tmp_path)
    assert {p.name for p in folder.iterdir()} >= {"b1.clean.jsonl", "b1.changes.jsonl"}
    assert [(Path(r.source).name, r.line) for r in read_records([str(folder)])] == \
        [("b0.jsonl", 1), ("b0.jsonl", 2), ("b1.jsonl", 1), ("b1.jsonl", 2), ("b1.jsonl", 3)]
    only = tmp_path / "only"
    only.mkdir()
    (folder / "b1.clean.jsonl").rename(only / "b1.clean.jsonl")
    with pytest.raises(DataError, match=r"only cleaning output, skipped: b1.clean.jsonl; name such a file itself"):
        read_records([str(only)])
    assert len(read_records([str(only / "b1.clean.jsonl")])) == 2  # named itself, it is read
